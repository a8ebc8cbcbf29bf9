"""The release: `python -m build` makes an sdist and a wheel that holds the
package and its metadata, and the wheel installs and runs outside the checkout.
"""

import email.parser
import os
import subprocess
import sys
import tarfile
import zipfile

import pytest
from helpers import ROOT, made_once

import stablegrad_optax as sgo

pytestmark = pytest.mark.slow

PACKAGE = "stablegrad_optax"


def build(out) -> None:
    """`python -m build` of the checkout into `out`, a folder outside it."""
    done = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    """(sdist, wheel), built once per test run."""
    out = made_once(tmp_path_factory, "dist", build)
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    return sdist, wheel


def test_the_wheel_holds_the_package_and_py_typed_only(dist):
    _, wheel = dist
    assert wheel.name == f"{PACKAGE}-{sgo.__version__}-py3-none-any.whl"
    assert f"dist/{wheel.name}" in (ROOT / "README.md").read_text()
    names = zipfile.ZipFile(wheel).namelist()
    info = f"{PACKAGE}-{sgo.__version__}.dist-info/"
    assert f"{PACKAGE}/py.typed" in names and f"{PACKAGE}/__init__.py" in names
    assert (
        f"{PACKAGE}/pinn/__init__.py" in names
        and f"{PACKAGE}/models/__init__.py" in names
    )
    assert f"{info}licenses/LICENSE" in names
    assert all(n.startswith((f"{PACKAGE}/", info)) for n in names), names
    for folder in ("tests", "examples", "benchmarks", "results", "docs", "notebooks"):
        assert not [n for n in names if f"/{folder}/" in f"/{n}"], folder
    # Every module of the checkout's package is in the wheel.
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / PACKAGE).rglob("*.py")}
    assert modules <= set(names)


def test_the_metadata_is_complete_and_true(dist):
    _, wheel = dist
    info = f"{PACKAGE}-{sgo.__version__}.dist-info/METADATA"
    meta = email.parser.Parser().parsestr(zipfile.ZipFile(wheel).read(info).decode())
    assert meta["Name"] == "stablegrad-optax" and meta["Version"] == sgo.__version__
    assert meta["License-Expression"] == "Apache-2.0"
    assert meta.get_all("License-File") == ["LICENSE"]
    assert meta["Summary"] and meta["Description-Content-Type"] == "text/markdown"
    # Python: what jax 0.10 needs, and the classifiers name only the tested one.
    assert meta["Requires-Python"] == ">=3.11"
    versions = [
        c.rsplit(" :: ", 1)[1]
        for c in meta.get_all("Classifier")
        if c.startswith("Programming Language :: Python :: 3.")
    ]
    assert versions == [f"{sys.version_info.major}.{sys.version_info.minor}"]
    requires = [r for r in meta.get_all("Requires-Dist") if "extra ==" not in r]
    assert sorted(r.split(">=")[0] for r in requires) == [
        "flax",
        "jax",
        "numpy",
        "optax",
    ]
    # No home page or project URL: the project has none yet.
    assert meta.get_all("Project-URL") is None and meta["Home-page"] is None


def test_the_sdist_builds_the_same_package(dist):
    sdist, _ = dist
    stem = sdist.name.removesuffix(".tar.gz")
    assert stem == f"stablegrad_optax-{sgo.__version__}"
    with tarfile.open(sdist) as archive:
        names = archive.getnames()
    for path in ("pyproject.toml", "README.md", "LICENSE", f"{PACKAGE}/py.typed"):
        assert f"{stem}/{path}" in names, path


def test_the_wheel_installs_and_runs_the_first_loop_outside_the_checkout(
    dist, tmp_path
):
    _, wheel = dist
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    # The dependencies as a user gets them: unpinned, from the package index.
    install = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", str(wheel)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    where = subprocess.run(
        [python, "-c", f"import {PACKAGE} as m; print(m.__file__, m.__version__)"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout.split()
    assert where[0].startswith(str(venv)) and where[1] == sgo.__version__
    snippet = tmp_path / "first_loop_linen.py"  # run from outside the checkout
    snippet.write_text((ROOT / "docs" / "snippets" / snippet.name).read_text())
    run = subprocess.run(
        [python, str(snippet)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.startswith("loss after 20 steps: ")
