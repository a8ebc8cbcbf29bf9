"""Shared problem zoo and models for the tests."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import pathlib
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest


class MLP(nn.Module):
    """A linen MLP whose Dense layers are named `Dense_0`..`Dense_{depth}`."""

    depth: int = 3
    width: int = 8

    @nn.compact
    def __call__(self, x):
        for _ in range(self.depth):
            x = jnp.tanh(nn.Dense(self.width)(x))
        return nn.Dense(1)(x)


class HiddenHeadMLP(nn.Module):
    """Hidden layers `hidden_0`..`hidden_{n-1}` and an output layer `head`."""

    num_hidden: int = 11
    width: int = 6

    @nn.compact
    def __call__(self, x):
        for i in range(self.num_hidden):
            x = jnp.tanh(nn.Dense(self.width, name=f"hidden_{i}")(x))
        return nn.Dense(1, name="head")(x)


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


def load_script(path: pathlib.Path, name: str, monkeypatch):
    """Imports a script by path (examples/ and benchmarks/ are not packages).

    It is registered in sys.modules under `name` for the test's duration
    (dataclasses and flax modules look their module up there).
    """
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def scripts_imported(folder: pathlib.Path, names, shared=()):
    """Imports `names` from `folder` as its scripts see each other; yields them.

    Afterwards those modules and their `shared` siblings (helpers the scripts
    import themselves), with their submodules, are forgotten, so nothing leaks
    into other tests.
    """
    forget = (*names, *shared)

    def ours(module: str) -> bool:  # a named module, or one inside a package
        return any(module == n or module.startswith(n + ".") for n in forget)

    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(folder))
        for name in [m for m in sys.modules if ours(m)]:
            patch.delitem(sys.modules, name)
        yield [importlib.import_module(name) for name in names]
        for name in [m for m in sys.modules if ours(m)]:
            sys.modules.pop(name)
