"""Invariants of the `stablegrad` transformation itself."""

import inspect
import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import mlp_params_and_grads, std64

import stablegrad_optax as sgo


def _apply(tx, grads, params=None, **extra):
    state = tx.init(grads if params is None else params)
    return jax.jit(tx.update)(grads, state, params, **extra)


def _weighted_layers(tree):
    return {
        name: layer
        for name, layer in tree.items()
        if any(np.ndim(leaf) >= 2 for leaf in jax.tree.leaves(layer))
    }


def test_every_layer_gets_the_output_layer_std():
    params, grads, _ = mlp_params_and_grads(depth=5)
    updates, state = _apply(sgo.stablegrad(), grads)
    ref = std64(grads["Dense_5"]["kernel"])
    assert float(state.reference) == pytest.approx(ref, rel=1e-5)
    for name in _weighted_layers(updates):
        assert std64(updates[name]["kernel"]) == pytest.approx(ref, rel=1e-5), name


def test_directions_kept_and_bias_gets_its_layer_factor():
    _, grads, _ = mlp_params_and_grads(depth=4)
    updates, state = _apply(sgo.stablegrad(), grads)
    names = sgo.layer_names(grads)
    for name, factor in zip(names, np.asarray(state.factors), strict=True):
        assert factor > 0
        for leaf in ("kernel", "bias"):
            g = np.asarray(grads[name][leaf], np.float64)
            u = np.asarray(updates[name][leaf], np.float64)
            np.testing.assert_allclose(u, factor * g, rtol=1e-6, atol=0)


def test_unweighted_layers_and_integer_leaves_pass_through():
    _, grads, _ = mlp_params_and_grads(depth=2)
    grads = dict(grads)
    grads["LayerNorm_0"] = {"scale": jnp.linspace(0.1, 3.0, 8)}
    grads["gain"] = jnp.asarray(5.0)
    grads["step"] = jnp.asarray(3, jnp.int32)
    updates, _ = _apply(sgo.stablegrad(output_layer="Dense_2"), grads)
    assert updates["LayerNorm_0"]["scale"] is grads["LayerNorm_0"]["scale"] or (
        np.array_equal(updates["LayerNorm_0"]["scale"], grads["LayerNorm_0"]["scale"])
    )
    np.testing.assert_array_equal(updates["gain"], grads["gain"])
    assert updates["step"].dtype == jnp.int32 and int(updates["step"]) == 3


def test_hand_computed_three_layer_mlp():
    _, grads, _ = mlp_params_and_grads(depth=2, width=4)
    assert sorted(grads) == ["Dense_0", "Dense_1", "Dense_2"]
    sigma = {k: np.asarray(v["kernel"], np.float64).std() for k, v in grads.items()}
    updates, state = _apply(sgo.stablegrad(), grads)
    for name in grads:
        factor = sigma["Dense_2"] / sigma[name]
        for leaf in ("kernel", "bias"):
            expected = np.asarray(grads[name][leaf], np.float64) * factor
            np.testing.assert_allclose(updates[name][leaf], expected, rtol=2e-6)
    np.testing.assert_allclose(
        state.stats, [sigma[k] for k in sorted(sigma)], rtol=1e-6
    )
    np.testing.assert_allclose(
        state.factors, [sigma["Dense_2"] / sigma[k] for k in sorted(sigma)], rtol=1e-6
    )
    assert int(state.count) == 1


@pytest.mark.parametrize(
    ("reference", "aggregate"),
    [
        ("mean", np.mean),
        ("geometric_mean", lambda s: np.exp(np.mean(np.log(s)))),
        ("median", np.median),
        ("max", np.max),
        (0.25, lambda s: 0.25),
        (lambda s: jnp.nanmin(s), np.min),
    ],
)
def test_references(reference, aggregate):
    _, grads, _ = mlp_params_and_grads(depth=6)
    stats = np.array([std64(grads[n]["kernel"]) for n in sgo.layer_names(grads)])
    updates, state = _apply(sgo.stablegrad(reference), grads)
    expected = aggregate(stats)
    assert float(state.reference) == pytest.approx(expected, rel=1e-5)
    for name in sgo.layer_names(grads):
        assert std64(updates[name]["kernel"]) == pytest.approx(expected, rel=1e-5)


def test_rms_statistic():
    _, grads, _ = mlp_params_and_grads(depth=3)
    updates, state = _apply(sgo.stablegrad(1.5, statistic="rms"), grads)
    for name in sgo.layer_names(grads):
        rms = np.sqrt(np.mean(np.asarray(updates[name]["kernel"], np.float64) ** 2))
        assert rms == pytest.approx(1.5, rel=1e-5)


@pytest.mark.parametrize("reference", ["prediction", "given"])
def test_reference_scale_extra_argument_in_a_chain(reference):
    params, grads, _ = mlp_params_and_grads(depth=3)
    tx = optax.chain(sgo.stablegrad(reference), optax.sgd(1.0))
    state = tx.init(params)
    updates, state = jax.jit(tx.update)(grads, state, params, reference_scale=0.01)
    for name in sgo.layer_names(grads):
        assert std64(updates[name]["kernel"]) == pytest.approx(0.01, rel=1e-5)
    assert not bool(state[0].stale_reference)


@pytest.mark.parametrize("reference", ["prediction", "given"])
def test_passed_reference_without_scale_raises(reference):
    _, grads, _ = mlp_params_and_grads(depth=2)
    with pytest.raises(ValueError, match="reference_scale.*prediction_value_and_grad"):
        _apply(sgo.stablegrad(reference), grads)


@pytest.mark.parametrize(
    "reference", ["output", "mean", "geometric_mean", "median", "max", 0.5, jnp.max]
)
def test_reference_scale_refused_where_it_is_not_read(reference):
    _, grads, _ = mlp_params_and_grads(depth=2)
    with pytest.raises(ValueError, match="reference"):
        _apply(sgo.stablegrad(reference), grads, reference_scale=jnp.float32(2.0))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 0.0, -1.0, 1e-45])
def test_bad_passed_reference_reuses_the_last_valid_one(bad):
    _, grads, _ = mlp_params_and_grads(depth=3)
    tx = sgo.stablegrad("prediction")
    update = jax.jit(tx.update)
    state = tx.init(grads)
    # Before any valid reference: every layer unchanged, and flagged.
    updates, state = update(grads, state, reference_scale=bad)
    assert bool(state.stale_reference)
    np.testing.assert_array_equal(state.factors, 1.0)
    for a, b in zip(jax.tree.leaves(updates), jax.tree.leaves(grads), strict=True):
        np.testing.assert_array_equal(a, b)
    updates, state = update(grads, state, reference_scale=0.03)
    assert not bool(state.stale_reference)
    assert float(state.reference) == pytest.approx(0.03)
    # A bad one after it: the last valid reference, not a jump to factor 1.
    big = jax.tree.map(lambda g: 1e3 * g, grads)
    updates, state = update(big, state, reference_scale=bad)
    assert bool(state.stale_reference)
    assert float(state.reference) == pytest.approx(0.03)
    for name in sgo.layer_names(grads):
        assert std64(updates[name]["kernel"]) == pytest.approx(0.03, rel=1e-5)
        assert np.all(np.isfinite(np.asarray(updates[name]["kernel"])))


def test_aliases_take_every_stablegrad_option_by_keyword():
    options = inspect.signature(sgo.stablegrad).parameters
    renamed = {"mask": "stablegrad_mask", "eps": "stablegrad_eps"}
    for alias in (sgo.stablegrad_adam, sgo.stablegrad_adamw, sgo.stablegrad_sgd):
        signature = inspect.signature(alias).parameters
        for name, option in options.items():
            keyword = signature[renamed.get(name, name)]
            assert keyword.kind is inspect.Parameter.KEYWORD_ONLY
            assert keyword.default == option.default
            assert renamed.get(name, name) in alias.__doc__
        assert next(iter(signature)) == "learning_rate"
    # Every option reaches stablegrad, under stablegrad's own name.
    options = {"reference": "mean", "statistic": "rms", "group_by": "leaf"}
    options |= {"max_scale": 1.5, "ema_decay": 0.5}
    params, grads, _ = mlp_params_and_grads(depth=3)
    mask = jax.tree.map(lambda x: x.ndim >= 2, params)
    alias = sgo.stablegrad_adamw(
        0.1, mask=None, stablegrad_mask=mask, stablegrad_eps=0.5, **options
    )
    direct = sgo.stablegrad(mask=mask, eps=0.5, **options)
    (_, alias_state), (_, direct_state) = (
        _apply(alias, grads, params),
        _apply(direct, grads, params),
    )
    chex.assert_trees_all_equal(alias_state[0], direct_state)
    assert not np.allclose(direct_state.factors, 1.0)


def test_prediction_reference_in_the_aliases():
    params, grads, _ = mlp_params_and_grads(depth=3)
    for alias in (sgo.stablegrad_adam, sgo.stablegrad_adamw, sgo.stablegrad_sgd):
        tx = optax.inject_hyperparams(alias, static_args=("reference",))(
            learning_rate=0.1, reference="prediction"
        )
        state = tx.init(params)
        with pytest.raises(ValueError, match="reference_scale"):
            tx.update(grads, state, params)
        _, state = jax.jit(tx.update)(grads, state, params, reference_scale=0.5)
        assert float(state.inner_state[0].reference) == pytest.approx(0.5)


def test_zero_layer_left_unchanged_and_never_divided():
    _, grads, _ = mlp_params_and_grads(depth=3)
    grads = dict(grads)
    grads["Dense_1"] = jax.tree.map(jnp.zeros_like, grads["Dense_1"])
    updates, state = _apply(sgo.stablegrad(eps=1e-12), grads)
    np.testing.assert_array_equal(updates["Dense_1"]["kernel"], 0.0)
    index = sgo.layer_names(grads).index("Dense_1")
    assert float(state.factors[index]) == 1.0
    assert float(state.stats[index]) == 0.0


def test_nan_layer_stays_nan_and_does_not_poison_others():
    _, grads, _ = mlp_params_and_grads(depth=4)
    grads = dict(grads)
    kernel = grads["Dense_1"]["kernel"].at[0, 0].set(jnp.nan)
    grads["Dense_1"] = {**grads["Dense_1"], "kernel": kernel}
    clean = [n for n in sgo.layer_names(grads) if n != "Dense_1"]
    expected = np.mean([std64(grads[n]["kernel"]) for n in clean])
    updates, state = _apply(sgo.stablegrad("mean"), grads)
    assert np.isnan(updates["Dense_1"]["kernel"][0, 0])
    assert float(state.reference) == pytest.approx(expected, rel=1e-5)
    for name in clean:
        assert np.all(np.isfinite(updates[name]["kernel"]))
        assert std64(updates[name]["kernel"]) == pytest.approx(expected, rel=1e-5)


def test_degenerate_reference_leaves_every_layer_unchanged():
    _, grads, _ = mlp_params_and_grads(depth=3)
    grads = dict(grads)
    grads["Dense_3"] = jax.tree.map(jnp.zeros_like, grads["Dense_3"])
    updates, state = _apply(sgo.stablegrad(), grads)
    assert float(state.reference) == 0.0
    np.testing.assert_array_equal(state.factors, 1.0)
    for a, b in zip(jax.tree.leaves(updates), jax.tree.leaves(grads), strict=True):
        np.testing.assert_array_equal(a, b)


def test_max_scale_bounds_the_factors():
    _, grads, _ = mlp_params_and_grads(depth=4)
    grads = dict(grads)
    grads["Dense_0"] = jax.tree.map(lambda g: g * 1e-3, grads["Dense_0"])
    _, free = _apply(sgo.stablegrad(), grads)
    assert float(jnp.max(free.factors)) > 4.0
    _, state = _apply(sgo.stablegrad(max_scale=4.0), grads)
    assert float(jnp.max(state.factors)) <= 4.0 * (1 + 1e-6)
    assert float(jnp.min(state.factors)) >= 0.25 * (1 - 1e-6)


def test_eps_floors_the_statistic():
    _, grads, _ = mlp_params_and_grads(depth=2)
    sigma = std64(grads["Dense_0"]["kernel"])
    eps = 10 * sigma
    updates, state = _apply(sgo.stablegrad(1.0, eps=eps), grads)
    index = sgo.layer_names(grads).index("Dense_0")
    assert float(state.factors[index]) == pytest.approx(1.0 / eps, rel=1e-6)
    assert std64(updates["Dense_0"]["kernel"]) == pytest.approx(sigma / eps, rel=1e-5)


def test_ema_smooths_the_statistics():
    _, g1, _ = mlp_params_and_grads(depth=2, seed=1)
    _, g2, _ = mlp_params_and_grads(depth=2, seed=2)
    tx = sgo.stablegrad(1.0, ema_decay=0.9)
    state = tx.init(g1)
    _, state = tx.update(g1, state)
    np.testing.assert_allclose(state.ema, state.stats)
    first = state.ema
    updates, state = tx.update(g2, state)
    expected = 0.9 * first + 0.1 * state.stats
    np.testing.assert_allclose(state.ema, expected, rtol=1e-6)
    np.testing.assert_allclose(state.factors, 1.0 / expected, rtol=1e-6)
    name = sgo.layer_names(g2)[0]
    assert std64(updates[name]["kernel"]) == pytest.approx(
        float(state.stats[0] / expected[0]), rel=1e-5
    )


def test_mask_pytree_and_callable():
    _, grads, _ = mlp_params_and_grads(depth=3)
    mask = {k: k != "Dense_1" for k in grads}
    for m in (mask, lambda tree: {k: k != "Dense_1" for k in tree}):
        updates, state = _apply(sgo.stablegrad(mask=m), grads)
        np.testing.assert_array_equal(
            updates["Dense_1"]["kernel"], grads["Dense_1"]["kernel"]
        )
        assert state.stats.shape == (3,)
        ref = std64(grads["Dense_3"]["kernel"])
        assert std64(updates["Dense_0"]["kernel"]) == pytest.approx(ref, rel=1e-5)


def test_group_by_leaf_and_callable():
    _, grads, _ = mlp_params_and_grads(depth=2)
    updates, state = _apply(sgo.stablegrad(1.0, group_by="leaf"), grads)
    assert sgo.layer_names(grads, group_by="leaf") == [
        "Dense_0/kernel",
        "Dense_1/kernel",
        "Dense_2/kernel",
    ]
    np.testing.assert_array_equal(updates["Dense_0"]["bias"], grads["Dense_0"]["bias"])
    assert std64(updates["Dense_1"]["kernel"]) == pytest.approx(1.0, rel=1e-5)

    def whole(path):
        return "all"

    updates, state = _apply(sgo.stablegrad(2.0, group_by=whole), grads)
    assert state.stats.shape == (1,)
    kernels = [updates[n]["kernel"] for n in sorted(grads)]
    assert std64(*kernels) == pytest.approx(2.0, rel=1e-5)


def test_output_layer_regex_and_predicate():
    _, grads, _ = mlp_params_and_grads(depth=3)
    ref = std64(grads["Dense_0"]["kernel"])
    for chosen in (
        "Dense_0",
        re.compile(r"Dense_0"),
        lambda path: path[-1].key == "Dense_0",
    ):
        _, state = _apply(sgo.stablegrad(output_layer=chosen), grads)
        assert float(state.reference) == pytest.approx(ref, rel=1e-5)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16, jnp.float32])
def test_low_precision_dtypes_are_kept(dtype):
    _, grads, _ = mlp_params_and_grads(depth=3)
    low = jax.tree.map(lambda g: g.astype(dtype), grads)
    updates, state = _apply(sgo.stablegrad(), low)
    for u in jax.tree.leaves(updates):
        assert u.dtype == dtype
    assert state.stats.dtype == jnp.float32
    ref = std64(low["Dense_3"]["kernel"])
    rel = float(jnp.finfo(dtype).eps) * 4
    for name in sgo.layer_names(low):
        assert std64(updates[name]["kernel"]) == pytest.approx(ref, rel=rel)


def test_extreme_magnitudes_give_the_right_factors():
    _, grads, _ = mlp_params_and_grads(depth=3)
    grads = dict(grads)
    grads["Dense_0"] = jax.tree.map(lambda g: g * 1e-30, grads["Dense_0"])
    grads["Dense_1"] = jax.tree.map(lambda g: g * 1e30, grads["Dense_1"])
    for reference in ("output", "geometric_mean", 1e30, 1e-30):
        updates, state = _apply(sgo.stablegrad(reference), grads)
        ref = float(state.reference)
        assert np.isfinite(ref) and ref > 0
        for name in sgo.layer_names(grads):
            u = np.asarray(updates[name]["kernel"])
            assert np.all(np.isfinite(u))
            assert std64(u) == pytest.approx(ref, rel=1e-5), (reference, name)
    stats = sgo.layer_statistics(grads)
    assert float(stats["Dense_0"]) == pytest.approx(
        std64(grads["Dense_0"]["kernel"]), rel=1e-5
    )
    assert float(stats["Dense_1"]) == pytest.approx(
        std64(grads["Dense_1"]["kernel"]), rel=1e-5
    )


def test_constant_and_offset_layers():
    grads = {
        "a": {"w": jnp.full((4, 4), 3.0)},
        "b": {"w": 1e4 + jnp.arange(16.0).reshape(4, 4) * 1e-2},
    }
    stats = sgo.layer_statistics(grads)
    assert float(stats["a"]) == 0.0
    assert float(stats["b"]) == pytest.approx(std64(grads["b"]["w"]), rel=1e-6)


def test_layer_with_several_weight_leaves_and_an_empty_leaf():
    rng = np.random.default_rng(0)
    grads = {
        "cell": {
            "input_kernel": jnp.asarray(1e3 + rng.standard_normal((3, 5)), jnp.float32),
            "hidden_kernel": jnp.asarray(1e3 + 2 * rng.standard_normal((5, 5))),
            "bias": jnp.ones(5),
            "unused": jnp.zeros((0, 3)),
        },
        "head": {"kernel": jnp.asarray(rng.standard_normal((5, 1)), jnp.float32)},
    }
    expected = std64(grads["cell"]["input_kernel"], grads["cell"]["hidden_kernel"])
    stats = sgo.layer_statistics(grads)
    assert float(stats["cell"]) == pytest.approx(expected, rel=1e-5)
    updates, state = _apply(sgo.stablegrad(), grads)
    both = (updates["cell"]["input_kernel"], updates["cell"]["hidden_kernel"])
    assert std64(*both) == pytest.approx(float(state.reference), rel=1e-5)
    assert updates["cell"]["unused"].shape == (0, 3)


@pytest.mark.parametrize("offset", [0.0, 3.0, 1e3, 1e6])
def test_a_large_mean_does_not_cancel_the_spread(offset):
    # Above a mean of 4 std the shift-free fast pass would lose digits; the
    # careful path (sums about the mean) takes over, for every layer at once.
    rng = np.random.default_rng(0)
    grads = {
        "a": {"w": jnp.asarray(offset + rng.standard_normal((256, 256)), jnp.float32)},
        "b": {"w": jnp.asarray(rng.standard_normal((64, 32)) * 1e-3, jnp.float32)},
    }
    stats = jax.jit(sgo.layer_statistics)(grads)
    for name in ("a", "b"):
        expected = std64(grads[name]["w"])
        assert float(stats[name]) == pytest.approx(expected, rel=2e-6), name
