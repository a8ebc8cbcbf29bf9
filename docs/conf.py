"""Sphinx configuration: the manual, the rendered notebooks and the API reference.

Build (offline: no intersphinx, notebooks shown with their committed outputs):

  python -m sphinx -W -b html docs docs/_build/html
"""

import importlib
import pathlib
import shutil

import stablegrad_optax

DOCS = pathlib.Path(__file__).resolve().parent
NOTEBOOKS = DOCS.parent / "notebooks"

project = "stablegrad-optax"
author = "stablegrad-optax developers"
copyright = "2026, stablegrad-optax developers"
release = version = stablegrad_optax.__version__
extensions = [
    "myst_nb",  # MyST markdown pages and .ipynb notebooks
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "sphinx.ext.napoleon",
]
exclude_patterns = ["_build", "README.md"]
suppress_warnings = ["mystnb.unknown_mime_type"]

# Notebooks: rendered from their committed outputs, never executed here.
nb_execution_mode = "off"
myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3

autodoc_typehints = "description"
autodoc_member_order = "bysource"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True  # Attributes: as fields, not module-level entries

# Every cross-reference must resolve (-n), except the names of other projects,
# which resolve only with intersphinx inventories (downloads, so not used here),
# and private base classes of the models, which are not documented.
nitpicky = True
_PUBLIC = "|".join(
    name
    for module in ("", ".datasets", ".init", ".models", ".pinn")
    for name in importlib.import_module("stablegrad_optax" + module).__all__
)
nitpick_ignore_regex = [
    (r"py:.*", r"(jax|jaxlib|numpy|optax|flax|collections|typing|os|re|pickle)\..+"),
    # private classes, and type aliases of private modules (``_layers.GroupBy``),
    # but never a public name spelled through its private module
    (r"py:class", r"(stablegrad_optax\.)?(\w+\.)*_\w+"),
    (r"py:class", rf"(stablegrad_optax\.)?(\w+\.)*_\w+\.(?!({_PUBLIC})$)\w+"),
]

html_theme = "sphinx_book_theme"
html_title = f"stablegrad-optax {release}"
html_theme_options = {
    "show_toc_level": 2,
    "use_download_button": False,
}


def _copy_notebooks() -> None:
    """Copy ../notebooks/*.ipynb under docs/ (Sphinx reads sources only there).

    Unchanged notebooks keep their copy, so an incremental build skips them.
    """
    target = DOCS / "notebooks"
    target.mkdir(exist_ok=True)
    sources = {path.name: path for path in sorted(NOTEBOOKS.glob("*.ipynb"))}
    for stale in target.glob("*.ipynb"):
        if stale.name not in sources:
            stale.unlink()
    for name, path in sources.items():
        copy = target / name
        if not copy.exists() or copy.read_bytes() != path.read_bytes():
            shutil.copyfile(path, copy)


_copy_notebooks()
