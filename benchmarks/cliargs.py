"""Command-line types of the benchmark scripts: ``examples/common.py``'s.

Kept for the scripts that import them by this name (see ``provenance.py``).
"""

from provenance import name_list  # noqa: F401
