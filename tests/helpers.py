"""Shared problem zoo and models for the tests."""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import importlib.util
import os
import pathlib
import sys
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest


class MLP(nn.Module):
    """A linen tanh MLP with `depth` hidden layers and one output.

    Its Dense layers are named `Dense_0`..`Dense_{depth}`, or with ``named``
    `hidden_0`..`hidden_{depth-1}` and an output layer `head`.
    """

    depth: int = 3
    width: int = 8
    named: bool = False

    @nn.compact
    def __call__(self, x):
        for i in range(self.depth):
            name = f"hidden_{i}" if self.named else None
            x = jnp.tanh(nn.Dense(self.width, name=name)(x))
        return nn.Dense(1, name="head" if self.named else None)(x)


def mlp_params_and_grads(depth=3, width=8, seed=0, batch=16):
    """Parameters of `MLP` and the gradient of a squared loss on random data."""
    model = MLP(depth=depth, width=width)
    kx, ky, kp = jax.random.split(jax.random.key(seed), 3)
    x = jax.random.normal(kx, (batch, 2))
    y = jax.random.normal(ky, (batch, 1))
    params = model.init(kp, x)["params"]

    def loss(p):
        return jnp.mean((model.apply({"params": p}, x) - y) ** 2)

    return params, jax.grad(loss)(params), loss


def std64(*arrays) -> float:
    """Population std of all entries together, in float64 numpy."""
    flat = np.concatenate([np.asarray(a, np.float64).ravel() for a in arrays])
    return float(flat.std())


# Optimisation targets shaped as matrices, so that every leaf is a weight.
def parabola():
    target = jnp.array([[1.0, -2.0, 0.5]])
    params = {"layer": {"w": jnp.zeros((1, 3))}}

    def loss(p):
        return jnp.sum((p["layer"]["w"] - target) ** 2)

    return params, loss, {"layer": {"w": target}}


def rosenbrock():
    params = {"layer": {"w": jnp.array([[-1.0, 1.5]])}}

    def loss(p):
        x, y = p["layer"]["w"][0, 0], p["layer"]["w"][0, 1]
        return (1.0 - x) ** 2 + 100.0 * (y - x**2) ** 2

    return params, loss, {"layer": {"w": jnp.ones((1, 2))}}


def matrix_parabola():
    target = {
        "a": {"w": jnp.arange(6.0).reshape(2, 3) / 6.0},
        "b": {"w": -jnp.ones((3, 2)) * 0.5},
    }
    params = jax.tree.map(jnp.zeros_like, target)

    def loss(p):
        return sum(
            jnp.sum((u - t) ** 2)
            for u, t in zip(jax.tree.leaves(p), jax.tree.leaves(target), strict=True)
        )

    return params, loss, target


PROBLEMS = {"parabola": parabola, "rosenbrock": rosenbrock, "matrix": matrix_parabola}


ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPT_FOLDERS = (ROOT / "examples", ROOT / "benchmarks")
CONFIG_MODULE = "example_config"  # examples/common.py's name for a config file


def load_script(path: pathlib.Path, name: str, monkeypatch):
    """Imports a script by path (examples/ and benchmarks/ are not packages).

    It is registered in sys.modules under `name` for the test's duration
    (dataclasses and flax modules look their module up there), and sees its
    folder on sys.path as when it runs; sys.path is restored afterwards.
    """
    monkeypatch.syspath_prepend(str(path.parent))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    return module


def _is_script(name: str, module) -> bool:
    """Whether a module came from examples/ or benchmarks/ (or is a config)."""
    file = getattr(module, "__file__", None)
    return name == CONFIG_MODULE or (
        file is not None
        and any(pathlib.Path(file).resolve().is_relative_to(f) for f in SCRIPT_FOLDERS)
    )


@contextlib.contextmanager
def scripts_imported(folder: pathlib.Path, names, shared=()):
    """Imports `names` from `folder` as its scripts see each other; yields them.

    Modules of other scripts (another example's ``train``) are set aside first.
    Afterwards every module imported from examples/ or benchmarks/, the config
    a script loaded by path and the `shared` names are forgotten, and sys.path
    is restored, so nothing leaks into other tests.
    """

    def ours(name: str, module) -> bool:
        named = any(name == n or name.startswith(n + ".") for n in (*names, *shared))
        return named or _is_script(name, module)

    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(folder))
        for name in [m for m, module in sys.modules.items() if ours(m, module)]:
            patch.delitem(sys.modules, name)
        yield [importlib.import_module(name) for name in names]
        for name in [m for m, module in list(sys.modules.items()) if ours(m, module)]:
            sys.modules.pop(name)


def benchmark_scripts(name: str):
    """A module-scoped fixture: benchmarks/`name`.py, `name`_report, `name`_results.

    The three scripts of a benchmark (run, report, results), imported as they
    see each other, then forgotten.
    """

    @pytest.fixture(scope="module")
    def modules():
        trio = [name, f"{name}_report", f"{name}_results"]
        with scripts_imported(ROOT / "benchmarks", trio) as imported:
            yield imported

    return modules


def tiny_results(name: str, *sittings):
    """A module-scoped fixture: a CSV the benchmark of `modules` writes in `sittings`.

    Each sitting is a list of flags for one call of its ``main``, which appends
    to ``<tmp>/<name>.csv`` (and must not fail); the fixture is that path.
    """

    @pytest.fixture(scope="module")
    def results(modules, tmp_path_factory):
        path = tmp_path_factory.mktemp(name) / f"{name}.csv"
        for flags in sittings:
            assert not modules[0].main([*flags, f"--results={path}"])  # 0 or None
        return path

    return results


def example_main(name: str):
    """A module-scoped fixture: examples/`name`/main.py, imported as the script
    sees its modules (once per test file)."""

    @pytest.fixture(scope="module")
    def main():
        with scripts_imported(ROOT / "examples" / name, ["main"]) as (module,):
            yield module

    return main


def regenerated_page(report, args, page) -> str:
    """Runs a report script on a stale ``page``: ``--check`` fails, writing the
    page makes it pass; returns the page, checked to be the generated one and to
    say how to regenerate it."""
    assert report.main([*args, "--check"]) == 1
    assert report.main(args) == 0
    assert report.main([*args, "--check"]) == 0
    text = page.read_text()
    assert text.startswith(report.TITLE + "\n")
    assert f"`python benchmarks/{pathlib.Path(report.__file__).name}`" in text
    return text


def markdown_section(text: str, *headings: str) -> str:
    """What a markdown page holds under each heading in turn, up to the next
    heading of the same level or above."""
    for heading in headings:
        level = len(heading.split(" ")[0])
        body = text.split(f"\n{heading}\n", 1)[1]
        ends = [body.find(f"\n{'#' * n} ") for n in range(1, level + 1)]
        text = body[: min((e for e in ends if e >= 0), default=len(body))]
    return text


def made_once(tmp_path_factory, name: str, make: Callable[[pathlib.Path], None]):
    """A folder that `make` fills once per test run, also under xdist.

    The run's workers share it (under the run's base temp folder); the first to
    take its file lock runs `make`, the others wait and reuse what it made. A
    `make` that raises leaves it unmade, and the next test to ask tries again.
    """
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the run's folder, above each worker's own
    folder = base / name
    with open(base / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / ".made").exists():
            folder.mkdir(exist_ok=True)
            make(folder)
            (folder / ".made").touch()
    return folder
