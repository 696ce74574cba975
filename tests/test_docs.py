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


PACKAGE = DOCS.parent / "pygmmis_ng"
DESIGN = (DOCS / "design.md").read_text()


def _modules() -> set[str]:
    """Every module of the package, relative to it (a sub-package's ``__init__.py`` only if it
    holds more than a docstring)."""
    import ast

    out = set()
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).as_posix()
        body = ast.parse(path.read_text()).body
        if path.name == "__init__.py" and "/" in rel and all(isinstance(n, ast.Expr) for n in body):
            continue
        out.add(rel)
    return out


def _module_map() -> set[str]:
    section = DESIGN.split("### Module map", 1)[1].split("\n\n", 2)[2].split("\n\n", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")][2:]
    return {re.match(r"\|[^|]*\| `([^`]+)` \|", row).group(1) for row in rows}


def test_the_design_map_lists_every_module_and_no_other():
    listed, actual = _module_map(), _modules()
    assert not actual - listed, f"add to docs/design.md's module map: {sorted(actual - listed)}"
    assert not listed - actual, f"no such module: {sorted(listed - actual)}"


def test_the_design_map_checker_reads_the_rows():
    assert {"config.py", "fitting/em/estep.py", "kernels/fused.py", "__init__.py"} <= _module_map()


def _headings() -> list[str]:
    return [re.sub(r"^#+\s*", "", line) for line in DESIGN.splitlines() if line.startswith("#")]


def test_every_reference_to_a_design_section_points_to_one():
    """A reference to docs/design.md followed by a heading in double quotes (in code, tests,
    README and docs) names a heading (its start); no reference to numbered sections of a design
    document that is not in the tree."""
    roots = [PACKAGE, DOCS.parent / "tests", DOCS.parent / "benchmarks", DOCS]
    files = [p for r in roots for p in r.rglob("*") if p.suffix in (".py", ".md", ".rst")
             and "_build" not in p.parts and "generated" not in p.parts]
    files.append(DOCS.parent / "README.md")
    headings = _headings()
    refs, numbered = [], []
    for path in files:
        text = path.read_text()
        refs += [(path.name, r) for r in re.findall(r'design\.md,\s*"([^"]+)"', text)]
        numbered += [path.name for _ in re.findall(r"DESIGN(?:\.md)? §", text)]
    assert len(refs) >= 5                          # the checker finds the references
    bad = [(f, r) for f, r in refs if not any(h.startswith(r) for h in headings)]
    assert not bad, f"references to no heading of docs/design.md: {bad}"
    assert not numbered, f"numbered DESIGN sections (there are none in the tree): {numbered}"
