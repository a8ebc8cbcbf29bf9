"""Per-layer statistics, names and imbalance; the doctests of every module."""

import doctest
import importlib
import inspect
import math
import pkgutil

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import mlp_params_and_grads, std64

import stablegrad_optax as sgo


def test_layer_statistics_match_numpy_and_state_order():
    _, grads, _ = mlp_params_and_grads(depth=4)
    stats = jax.jit(sgo.layer_statistics)(grads)
    assert list(stats) == sgo.layer_names(grads)
    for name, value in stats.items():
        assert float(value) == pytest.approx(std64(grads[name]["kernel"]), rel=1e-6)
    rms = sgo.layer_statistics(grads, statistic="rms")
    kernel = np.asarray(grads["Dense_0"]["kernel"], np.float64)
    assert float(rms["Dense_0"]) == pytest.approx(np.sqrt(np.mean(kernel**2)), rel=1e-6)
    _, state = sgo.stablegrad().update(grads, sgo.stablegrad().init(grads))
    np.testing.assert_allclose(state.stats, list(stats.values()), rtol=1e-6)


def test_layer_statistics_of_a_tree_without_weights_is_empty():
    assert sgo.layer_statistics({"b": jnp.ones(3)}) == {}


def test_imbalance_skips_zero_and_non_finite():
    summary = sgo.imbalance({"a": 4.0, "b": 0.5, "dead": 0.0, "bad": jnp.nan})
    assert summary.ratio == 8.0
    assert (summary.largest, summary.smallest) == ("a", "b")
    assert (summary.largest_value, summary.smallest_value) == (4.0, 0.5)
    empty = sgo.imbalance({"dead": 0.0})
    assert math.isnan(empty.ratio) and empty.largest is None


def modules_with_examples() -> list[str]:
    """Every library module whose source holds a docstring example (>>>)."""
    names = [sgo.__name__] + [
        m.name for m in pkgutil.walk_packages(sgo.__path__, sgo.__name__ + ".")
    ]
    return sorted(
        n for n in names if ">>>" in inspect.getsource(importlib.import_module(n))
    )


def test_the_doctests_cover_the_modules_they_should():
    found = modules_with_examples()
    for module in ("stablegrad_optax._stablegrad", "stablegrad_optax._adamp"):
        assert module in found
    assert "stablegrad_optax.pinn._burgers" not in found  # no examples there


@pytest.mark.parametrize("module", modules_with_examples())
def test_docstring_examples_run(module):
    result = doctest.testmod(importlib.import_module(module), verbose=False)
    assert result.attempted > 0
    assert result.failed == 0


def test_readme_logging_snippet():
    params, grads, _ = mlp_params_and_grads(depth=2)
    tx = sgo.stablegrad_adam(1e-3)
    opt_state = tx.init(params)
    _, opt_state = tx.update(grads, opt_state, params)
    sg_state = optax.tree_utils.tree_get(opt_state, "StableGradState")
    logged = dict(zip(sgo.layer_names(params), sg_state.factors, strict=True))
    assert list(logged) == ["Dense_0", "Dense_1", "Dense_2"]
    assert float(logged["Dense_2"]) == 1.0
