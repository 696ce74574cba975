"""The documentation site lists every public name, and every guide page is in a toctree.

(The site itself is built by .ci/run with warnings as errors; these checks catch a new
public name or page that was not added to it, without building it.)
"""
from __future__ import annotations

import re
import types
from pathlib import Path

import pygmmis_ng as ng
from pygmmis_ng.tools import datasets, hipparcos, plots

DOCS = Path(__file__).resolve().parents[1] / "docs"


def listed():
    """Names in the autosummary blocks of docs/api.rst."""
    text = (DOCS / "api.rst").read_text()
    return set(re.findall(r"^   ([A-Za-z_][A-Za-z0-9_]*)$", text, flags=re.M))


def test_every_public_name_is_in_the_api_reference():
    names = listed()
    top = {n for n in ng.__all__ if not isinstance(getattr(ng, n), types.ModuleType)}
    missing = (top - {"__version__"}) - names
    assert not missing, f"add to docs/api.rst: {sorted(missing)}"
    for mod in (datasets, hipparcos):
        public = {n for n in mod.__all__ if not n.isupper()}
        assert not public - names, f"{mod.__name__}: {sorted(public - names)}"
    assert {"plot_density", "plot_ellipses"} <= names and hasattr(plots, "plot_density")


def test_every_guide_page_is_reachable():
    index = (DOCS / "guide" / "index.md").read_text()
    for page in (DOCS / "guide").glob("*.md"):
        if page.stem != "index":
            assert f"\n{page.stem}\n" in index, f"{page.name} is not in guide/index.md"
    top = (DOCS / "index.md").read_text()
    for page in ("guide/index", "porting", "auto_examples/index", "api", "benchmarks",
                 "design", "changelog"):
        assert f"\n{page}\n" in top
