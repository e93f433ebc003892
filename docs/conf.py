"""Sphinx configuration of the fastbias documentation.

Build (warnings are errors, no network access needed)::

    pip install ".[docs]"
    sphinx-build -W -b html docs docs/_build/html
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the local extension below
if os.environ.get("FASTBIAS_DOCS_SRC"):  # build from a source tree without installing
    sys.path.insert(0, os.environ["FASTBIAS_DOCS_SRC"])

import fastbias  # noqa: E402

project = "fastbias"
author = "the fastbias developers"
copyright = "the fastbias developers"  # noqa: A001
release = fastbias.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "fastbias_targets",  # docs/fastbias_targets.py: the reproduce targets, from the registry
]

# No intersphinx: the build must not touch the network.
templates_path: list[str] = []
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
root_doc = "index"

autosummary_generate = True
autosummary_imported_members = False
autodoc_default_options = {"members": True, "show-inheritance": False}
autodoc_typehints = "none"  # the numpydoc "Parameters" sections carry the types
autodoc_member_order = "bysource"

numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_validation_checks: set[str] = set()

# MathJax is loaded from the page at read time; the build itself stays offline.
html_theme = "alabaster"
html_title = f"fastbias {release}"
html_static_path: list[str] = []
html_theme_options = {
    "description": "The implicit bias of gradient descent, computed fast, exactly, verifiably.",
    "fixed_sidebar": True,
}
nitpicky = False


def _skip_member(app, what, name, obj, skip, options):
    # scikit-learn generates set_{fit,score,...}_request methods on every estimator; their
    # docstrings cross-reference scikit-learn's own documentation
    if name.startswith("set_") and name.endswith("_request"):
        return True
    return None


def setup(app):
    app.connect("autodoc-skip-member", _skip_member)
