"""Sphinx configuration of pyattrib's documentation site.

Build (from the repository root)::

    npm ci --prefix docs                       # MathJax, served from _static (no CDN)
    sphinx-build -W -n docs docs/_build/html   # warnings are errors, nitpicky references

The site works from disk with no network: MathJax is a local copy (SVG output, no web fonts),
the theme (furo) uses system fonts, and nothing is fetched at view time.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(DOCS))
os.environ.setdefault("MPLBACKEND", "Agg")

import _build_pages  # noqa: E402  (docs/_build_pages.py: API stubs and the benchmark page)

import pyattrib  # noqa: E402

_build_pages.write_api_pages(DOCS / "api")
_build_pages.write_benchmark_page(ROOT / "benchmarks", DOCS / "guides" / "benchmarks.md")

project = "pyattrib"
author = "the pyattrib developers"
copyright = "pyattrib developers, BSD-3-Clause"  # noqa: A001
release = version = pyattrib.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.doctest",
    "sphinx.ext.viewcode",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = [
    "_build",
    "node_modules",
    "sg_execution_times.rst",
    "**/README.md",
    "gallery/*.ipynb",
    "gallery/*.py",
    "gallery/*.zip",
]
templates_path = ["_templates"]
root_doc = "index"
default_role = "literal"  # `x` in a docstring is code, as in Markdown

# --- API reference ----------------------------------------------------------------------
autosummary_generate = True
autosummary_imported_members = True
autodoc_default_options = {"members": False}
autodoc_typehints = "signature"
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True
autodoc_type_aliases = {
    "TargetLike": "pyattrib.TargetLike",
    "BaselineLike": "pyattrib.BaselineLike",
    "TensorOrTuple": "pyattrib.TensorOrTuple",
}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_custom_sections = [("References", "notes_style")]

# Names outside this project: no network for intersphinx, so they are plain text, listed here.
nitpick_ignore_regex = [
    (r"py:.*", r"(torch|numpy|np|sklearn|matplotlib|bottle|transformers|tqdm|collections|typing|types|abc)\..*"),
    (r"py:.*", r"(Tensor|Module|Generator|Callable|Sequence|Mapping|Iterable|Iterator|Any|Literal|Path|Figure|Axes)"),
    (r"py:.*", r"(optional|callable|tensor|tensors|module|iterable|float|int|str|bool|None|dict|list|tuple)"),
    (r"py:class", r"(pathlib\.Path|os\.PathLike|dataclasses\..*|enum\..*|numbers\..*|inspect\..*|wsgiref\..*)"),
    (r"py:class", r"TypeAliasForwardRef"),  # Sphinx's own stand-in for a string annotation it cannot resolve
    # Attributor[C]: C is the call's signature, a typing protocol read by static checkers (see Attributor)
    (r"py:class", r"pyattrib\._core\.(calls\.\w+Call|attributor\.C)"),
]

# --- math: a local MathJax (npm package mathjax, SVG output: no font files to load) --------
_MATHJAX = DOCS / "node_modules" / "mathjax" / "es5" / "tex-svg-full.js"
if not _MATHJAX.exists():
    raise RuntimeError(f"{_MATHJAX} is missing: run `npm ci --prefix docs` first (MathJax is served locally)")
mathjax_path = "tex-svg-full.js"
mathjax3_config = {"svg": {"fontCache": "global"}}

# --- gallery: every script in examples/ runs during the build ----------------------------
sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "gallery",
    "filename_pattern": r".*\.py$",
    "ignore_pattern": os.environ.get("PYATTRIB_DOCS_SKIP_EXAMPLES", r"^$") or r"^$",
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
    "image_scrapers": (_build_pages.OutputImages(ROOT / "examples" / "out"),),
    "run_stale_examples": False,
    "abort_on_example_error": True,
    "show_memory": False,
    "write_computation_times": False,  # its page loads jQuery and DataTables from a CDN
    "plot_gallery": "True",
}

# --- doctests: the examples in docstrings and guides run against a tiny model --------------
doctest_global_setup = """
import torch
import pyattrib as pa
from docs_doctest_setup import *  # model, x, y, baselines, ...
"""
doctest_test_doctest_blocks = "default"

# --- HTML ----------------------------------------------------------------------------------
html_theme = "furo"
html_title = f"pyattrib {release}"
html_static_path = ["_static", str(_MATHJAX)]
html_css_files = ["pyattrib.css"]
html_theme_options = {"navigation_with_keys": True}
html_show_sourcelink = False
html_show_search_summary = False  # summaries are fetched per page, which a page opened from disk may not do
html_copy_source = False
myst_heading_anchors = 3
myst_enable_extensions = ["dollarmath", "colon_fence"]
suppress_warnings = ["config.cache"]
