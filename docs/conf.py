"""Sphinx configuration: the API reference, built from the docstrings."""

import stablegrad_optax

project = "stablegrad-optax"
author = "stablegrad-optax developers"
release = stablegrad_optax.__version__
extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon"]
autodoc_typehints = "description"
autodoc_member_order = "bysource"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True  # Attributes: as fields, not module-level entries
exclude_patterns = ["_build"]
html_theme = "alabaster"
