"""Sphinx configuration: API reference (numpydoc), user guide (MyST), gallery (sphinx-gallery).

Build with warnings as errors, as CI does::

    pip install ".[docs]" && python -m sphinx -W --keep-going -b html docs docs/_build/html
"""
import os
import sys

import matplotlib

matplotlib.use("Agg")
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

import pygmmis_ng  # noqa: E402

project = "pygmmis_ng"
author = "The pygmmis_ng developers"
copyright = "2025-2026, the pygmmis_ng developers"
release = version = pygmmis_ng.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "auto_examples/*.ipynb", "auto_examples/*.py",
                    "auto_examples/*.zip", "auto_examples/*.json", "auto_examples/*.md5"]
myst_heading_anchors = 3
suppress_warnings = ["myst.header"]

templates_path = ["_templates"]
autosummary_generate = True
autodoc_default_options = {"members": False}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

intersphinx_mapping = {
    "python": ("https://docs.python.org/3", None),
    "numpy": ("https://numpy.org/doc/stable/", None),
    "sklearn": ("https://scikit-learn.org/stable/", None),
}
# the build must not need the network: the inventories are optional
intersphinx_disabled_reftypes = ["*"]
if os.environ.get("PYGMMIS_NG_DOCS_OFFLINE", "1") == "1":
    intersphinx_mapping = {}

sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r".*\.py$",          # execute every example
    "ignore_pattern": r"__init__\.py",
    "abort_on_example_error": True,
    "download_all_examples": False,
    "within_subsection_order": "FileNameSortKey",
    "plot_gallery": "True",
}

html_theme = "pydata_sphinx_theme"
html_title = "pygmmis_ng"
html_theme_options = {"navigation_with_keys": False, "show_toc_level": 2}
