"""Degenerate gradients (hypothesis): zero, NaN/Inf, 1e-30, 1e30, bf16/fp16."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import stablegrad_optax as sgo
from stablegrad_optax import _statistic

SHAPES = {"Dense_0": (3, 4), "Dense_1": (4, 4), "Dense_2": (4, 1)}
KINDS = ("normal", "zero", "constant", "one_hot", "nan", "inf")
# Decimal exponents each dtype can hold with room for a 4-sigma spread.
EXPONENTS = {"float32": (-30, 30), "bfloat16": (-30, 30), "float16": (-3, 3)}
REFERENCES = ("output", "mean", "geometric_mean", "median", "max", 1.0, "given")


@functools.cache
def _update(reference):
    tx = sgo.stablegrad("given" if reference == "given" else reference)
    return tx, jax.jit(tx.update)


def _layer(kind, exponent, shape, rng, dtype):
    if kind == "zero":
        kernel = np.zeros(shape)
    elif kind == "constant":
        kernel = np.full(shape, 10.0**exponent)
    elif kind == "one_hot":
        kernel = np.zeros(shape)
        kernel.flat[rng.integers(kernel.size)] = 10.0**exponent
    else:
        kernel = rng.standard_normal(shape) * 10.0**exponent
        if kind == "nan":
            kernel.flat[rng.integers(kernel.size)] = np.nan
        elif kind == "inf":
            kernel.flat[rng.integers(kernel.size)] = -np.inf
    bias = rng.standard_normal(shape[1]) * 10.0**exponent
    return {"kernel": jnp.asarray(kernel, dtype), "bias": jnp.asarray(bias, dtype)}


@st.composite
def gradients(draw):
    dtype = draw(st.sampled_from(sorted(EXPONENTS)))
    low, high = EXPONENTS[dtype]
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    grads = {
        name: _layer(
            draw(st.sampled_from(KINDS)),
            draw(st.integers(low, high)),
            shape,
            rng,
            dtype,
        )
        for name, shape in SHAPES.items()
    }
    scale = 10.0 ** draw(st.integers(low, high))
    return grads, draw(st.sampled_from(REFERENCES)), scale


def _std(x):
    with np.errstate(invalid="ignore", over="ignore"):
        return float(np.asarray(x, np.float64).std())


def _expected_reference(stats, reference, scale):
    valid = {k: v for k, v in stats.items() if np.isfinite(v) and v > 0}
    if reference == "output":
        return stats["Dense_2"]
    if reference == "given":
        return scale
    if isinstance(reference, float):
        return reference
    if not valid:
        return np.nan
    values = np.array(list(valid.values()))
    return {
        "mean": np.mean,
        "geometric_mean": lambda v: np.exp(np.mean(np.log(v))),
        "median": np.median,
        "max": np.max,
    }[reference](values)


@given(gradients())
def test_no_nan_appears_and_valid_layers_reach_the_reference(case):
    grads, reference, scale = case
    tx, update = _update(reference)
    extra = {"reference_scale": scale} if reference == "given" else {}
    updates, state = update(grads, tx.init(grads), **extra)
    dtype = jax.tree.leaves(grads)[0].dtype
    rtol = 1e-5 if dtype == jnp.float32 else 4 * float(jnp.finfo(dtype).eps)

    for g, u in zip(jax.tree.leaves(grads), jax.tree.leaves(updates), strict=True):
        g64, u64 = np.asarray(g, np.float64), np.asarray(u, np.float64)
        assert u.dtype == g.dtype
        assert not np.any(np.isnan(u64) & ~np.isnan(g64)), "a NaN appeared"
        assert np.all(np.isfinite(u64[np.isfinite(g64)])), "an Inf appeared"
        assert np.all(~np.isfinite(u64[~np.isfinite(g64)])), "a NaN/Inf vanished"

    stats = {name: _std(grads[name]["kernel"]) for name in SHAPES}
    ref = _expected_reference(stats, reference, scale)
    ref_ok = np.isfinite(ref) and ref > 0
    if ref_ok:
        assert float(state.reference) == np.float32(ref) or np.isclose(
            float(state.reference), ref, rtol=rtol
        )
    for i, name in enumerate(SHAPES):
        layer_ok = np.isfinite(stats[name]) and stats[name] > 0
        if ref_ok and layer_ok:
            assert np.isclose(_std(updates[name]["kernel"]), ref, rtol=rtol), name
            factor = ref / stats[name]
            if factor > float(np.finfo(np.float32).max):  # the update is still exact
                assert float(state.factors[i]) == np.inf, name
            else:
                assert np.isclose(float(state.factors[i]), factor, rtol=rtol), name
        else:
            assert float(state.factors[i]) == 1.0, name
            for leaf in ("kernel", "bias"):
                np.testing.assert_array_equal(
                    np.asarray(updates[name][leaf], np.float64),
                    np.asarray(grads[name][leaf], np.float64),
                )


@given(
    st.sampled_from(["std", "rms"]),
    st.integers(-35, 35),
    st.integers(0, 2**32 - 1),
)
def test_statistic_is_right_over_the_float32_range(statistic, exponent, seed):
    rng = np.random.default_rng(seed)
    values = rng.standard_normal((16, 8)) * 10.0**exponent + 10.0**exponent
    grads = {"layer": {"w": jnp.asarray(values, jnp.float32)}}
    got = float(sgo.layer_statistics(grads, statistic=statistic)["layer"])
    stored = np.asarray(grads["layer"]["w"], np.float64)
    expected = stored.std() if statistic == "std" else np.sqrt(np.mean(stored**2))
    assert np.isclose(got, expected, rtol=1e-5)


@pytest.mark.parametrize(
    "scale, offset", [(1.0, 0.0), (1e-30, 0.0), (1e25, 0.0), (1.0, 1e3)]
)
def test_stacked_and_lone_leaves_give_the_same_statistics(scale, offset):
    """Small same-shaped leaves are stacked, large ones reduced alone: both exact.

    Each case takes a different path: normal (fast), 1e-30 and 1e25 (careful:
    outside the safe float32 range) and a mean 1e3 times the spread (careful:
    cancellation).
    """
    assert 64 * 64 <= _statistic._STACK_MAX_SIZE < 160 * 160
    rng = np.random.default_rng(0)
    shapes = {
        "small_0": {"w": (64, 64), "v": (64, 64)},  # two leaves, one layer
        "small_1": {"w": (64, 64)},
        "big_0": {"w": (160, 160)},
        "big_1": {"w": (160, 160), "u": (3, 3, 8, 8)},
        "head": {"w": (160, 1)},
    }
    grads = {
        layer: {
            name: jnp.asarray(rng.standard_normal(shape) * scale + offset * scale)
            for name, shape in leaves.items()
        }
        for layer, leaves in shapes.items()
    }
    got = sgo.layer_statistics(grads)
    for layer, leaves in grads.items():
        stored = np.concatenate(
            [np.asarray(x, np.float64).ravel() for x in leaves.values()]
        )
        np.testing.assert_allclose(float(got[layer]), stored.std(), rtol=2e-5)


@pytest.mark.parametrize("offset", [0.0, 1e5])
def test_a_layers_leaves_far_apart_in_scale_and_mean(offset):
    """The careful path scales each leaf on its own, then brings a layer's
    leaves to the scale of its largest and to one centre: exact for leaves 60
    orders apart, for means 1e5 times the spread (within and across leaves),
    beside a lone leaf, and for a layer constant across its leaves."""
    rng = np.random.default_rng(2)
    normal = lambda shape, scale, mean=offset: jnp.asarray(
        (rng.standard_normal(shape) + mean) * scale, jnp.float32
    )
    grads = {
        "apart": {"w": normal((64, 64), 1e30), "v": normal((2, 4), 1e-30)},
        "near": {"w": normal((130, 130), 1e25), "v": normal((2, 5), 1e25, 2 * offset)},
        "lone": {"w": normal((130, 130), 1.0)},
        "tiny": {"w": normal((1, 3), 1e-30), "v": normal((2, 5), 1e-30)},
        "flat": {"w": jnp.full((4, 4), 3e20), "v": jnp.full((130, 130), 3e20)},
    }
    got = sgo.layer_statistics(grads)
    for layer, leaves in grads.items():
        stored = np.concatenate(
            [np.asarray(x, np.float64).ravel() for x in leaves.values()]
        )
        np.testing.assert_allclose(float(got[layer]), stored.std(), rtol=2e-5)
    assert float(got["flat"]) == 0.0


@pytest.mark.parametrize("other", [1.0, 1e-30])
def test_a_zero_layer_is_exact_beside_normal_and_tiny_ones(other):
    """A zero layer alone would pass the fast sums (the careful path is then
    skipped); beside a 1e-30 layer the careful path still runs for that one."""
    rng = np.random.default_rng(1)
    grads = {
        "dead": {"w": jnp.zeros((160, 160))},
        "live": {"w": jnp.asarray(rng.standard_normal((160, 160)))},
        "other": {"w": jnp.asarray(rng.standard_normal((64, 64)) * other)},
    }
    got = sgo.layer_statistics(grads)
    assert float(got["dead"]) == 0.0
    for name in ("live", "other"):
        expected = np.asarray(grads[name]["w"], np.float64).std()
        assert np.isclose(float(got[name]), expected, rtol=1e-5), name
