"""Sphinx configuration for wsio's documentation (``make docs``)."""

from __future__ import annotations

import builtins
import os
import sys
from pathlib import Path

# The docstrings and signatures are read from the Python source that Cython also
# compiles: the same text either way, and the pure modules carry full signatures.
os.environ["WSIO_PURE"] = "1"

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(DOCS.parent / "src"))

import wsio  # noqa: E402

project = "wsio"
author = "the wsio authors"
copyright = "the wsio authors, MIT License"
release = wsio.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "myst_parser",
    "wsio_sphinx",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]
templates_path: list[str] = []

# The checked-in Markdown (bench and compliance results, the changelog) is included
# through MyST; its headings get anchors so that its own links work.
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]

# Every reference must resolve. The standard library's cannot: intersphinx needs the
# network, which the build does not have, so references into it stay plain text.
nitpicky = True
_stdlib = "|".join(sorted(sys.stdlib_module_names | {"typing_extensions"}))
_builtins = "|".join(name for name in dir(builtins) if not name.startswith("_"))
nitpick_ignore_regex = [
    (r"py:.*", rf"({_stdlib})(\..+)?"),
    (r"py:.*", rf"({_builtins})"),
]

# Each reference page asks for its module's members; everything a module lists in
# ``__all__`` is public, with or without a docstring, wherever it is defined.
autodoc_default_options = {
    "undoc-members": True,
    "imported-members": True,
    "member-order": "bysource",
    "show-inheritance": True,
}
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
autoclass_content = "both"
add_module_names = False
python_use_unqualified_type_names = True

html_theme = "furo"
html_title = f"wsio {release}"
html_static_path: list[str] = []
