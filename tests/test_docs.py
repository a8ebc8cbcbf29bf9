"""The API reference (docs/): every public symbol is in it, and it builds cleanly."""

import importlib
import pathlib
import re
import subprocess
import sys

import pytest

DOCS = pathlib.Path(__file__).parents[1] / "docs"
PACKAGES = (
    "stablegrad_optax",
    "stablegrad_optax.models",
    "stablegrad_optax.pinn",
    "stablegrad_optax.init",
    "stablegrad_optax.datasets",
)


def documented() -> dict[str, set[str]]:
    """The names each module's section of api.rst documents."""
    names: dict[str, set[str]] = {}
    module = None
    for line in (DOCS / "api.rst").read_text().splitlines():
        current = re.match(r"\.\. currentmodule:: (\S+)", line)
        if current:
            module = current.group(1)
        entry = re.match(r"\.\. (?:auto)?(?:function|class|data):: (\w+)", line)
        if entry:
            names.setdefault(module, set()).add(entry.group(1))
    return names


@pytest.mark.parametrize("package", PACKAGES)
def test_every_public_symbol_is_documented(package):
    public = set(importlib.import_module(package).__all__)
    missing = public - documented().get(package, set())
    assert not missing, f"{package}: add {sorted(missing)} to docs/api.rst"


def test_every_documented_name_exists():
    for package, names in documented().items():
        module = importlib.import_module(package)
        assert names <= set(module.__all__), sorted(names - set(module.__all__))


def test_the_docs_build_without_warnings(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html"]
        + [str(DOCS), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    api = (tmp_path / "api.html").read_text()
    assert 'id="stablegrad_optax.stablegrad"' in api
