"""What a user gets besides the code: type-hint marker, citation, changelog, metadata."""
from __future__ import annotations

from importlib import metadata, resources
from pathlib import Path

import yaml

import pygmmis_ng as ng

ROOT = Path(__file__).resolve().parents[1]


def test_installed_package_is_typed_and_has_metadata():
    assert resources.files("pygmmis_ng").joinpath("py.typed").is_file()
    meta = metadata.metadata("pygmmis_ng")
    assert meta["Version"] == ng.__version__
    assert meta["Author"] and "Typing :: Typed" in meta.get_all("Classifier")
    assert any(r.startswith("tqdm") for r in metadata.requires("pygmmis_ng"))


def test_citation_cites_both_method_papers():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["version"] == ng.__version__
    dois = {ref["doi"] for ref in cff["references"]}
    assert dois == {"10.1016/j.ascom.2018.09.013", "10.1214/10-AOAS439"}


def test_changelog_has_the_current_version():
    text = (ROOT / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" in text and f"## [{ng.__version__}]" in text
