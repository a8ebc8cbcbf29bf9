"""Every wrong option fails with a ValueError that names it."""

import re

import jax
import jax.numpy as jnp
import optax
import pytest

import stablegrad_optax as sgo

PARAMS = {
    f"Dense_{i}": {"kernel": jnp.ones((2, 2)), "bias": jnp.ones(2)} for i in range(3)
}


@pytest.mark.parametrize(
    ("kwargs", "option"),
    [
        ({"eps": -1e-8}, "eps"),
        ({"eps": float("nan")}, "eps"),
        ({"eps": float("inf")}, "eps"),
        ({"eps": "small"}, "eps"),
        ({"eps": 1e300}, "eps"),
        ({"max_scale": 1.0}, "max_scale"),
        ({"max_scale": 0.5}, "max_scale"),
        ({"max_scale": float("nan")}, "max_scale"),
        ({"reference": "outputs"}, "reference"),
        ({"reference": -1.0}, "reference"),
        ({"reference": 0.0}, "reference"),
        ({"reference": float("nan")}, "reference"),
        ({"reference": 1e300}, "reference"),
        ({"reference": 1e-300}, "reference"),
        ({"reference": True}, "reference"),
        ({"reference": [1.0]}, "reference"),
        ({"reference": jnp.ones(2)}, "reference"),
        ({"max_scale": jnp.array([2.0, 3.0])}, "max_scale"),
        ({"statistic": "var"}, "statistic"),
        ({"statistic": None}, "statistic"),
        ({"ema_decay": 1.0}, "ema_decay"),
        ({"ema_decay": -0.1}, "ema_decay"),
        ({"ema_decay": float("nan")}, "ema_decay"),
        ({"output_layer": 3}, "output_layer"),
        ({"reference": "mean", "output_layer": "Dense_2"}, "output_layer"),
        ({"group_by": "module"}, "group_by"),
    ],
)
def test_bad_options_raise_at_construction(kwargs, option):
    with pytest.raises(ValueError, match=option):
        sgo.stablegrad(**kwargs)


@pytest.mark.parametrize(
    "alias", [sgo.stablegrad_adam, sgo.stablegrad_adamw, sgo.stablegrad_sgd]
)
def test_aliases_check_their_stablegrad_options(alias):
    with pytest.raises(ValueError, match="reference"):
        alias(1e-3, reference="bogus")
    with pytest.raises(ValueError, match="eps"):
        alias(1e-3, stablegrad_eps=-1.0)
    # stablegrad's own names for the prefixed options are not the aliases'.
    for unknown in ({"eps_stablegrad": 0.1}, {"statistics": "std"}):
        with pytest.raises(TypeError, match=next(iter(unknown))):
            alias(1e-3, **unknown)
    if alias is not sgo.stablegrad_adamw:  # adamw's own mask is its weight decay's
        with pytest.raises(TypeError, match="'mask'"):
            alias(1e-3, mask=None)


def test_messages_say_what_is_accepted():
    with pytest.raises(ValueError, match=r"one of \('std', 'rms'\)"):
        sgo.stablegrad(statistic="mad")
    with pytest.raises(ValueError, match=r"None or a number > 1, got 1\.0"):
        sgo.stablegrad(max_scale=1.0)


def test_output_layer_matching_nothing_lists_the_layers():
    tx = sgo.stablegrad(output_layer="head")
    with pytest.raises(ValueError, match="output_layer") as info:
        tx.init(PARAMS)
    assert "['Dense_0', 'Dense_1', 'Dense_2']" in str(info.value)


def test_output_layer_matching_several_raises():
    tx = sgo.stablegrad(output_layer=lambda path: True)
    with pytest.raises(ValueError, match="matches 3 layers"):
        tx.init(PARAMS)
    with pytest.raises(ValueError, match="output_layer"):
        sgo.stablegrad(output_layer=re.compile("Dense_[01]")).init(PARAMS)


@pytest.mark.parametrize(
    "reference", ["output", "mean", "geometric_mean", "median", "max", jnp.mean]
)
def test_no_weight_leaf_raises_at_init_for_weight_based_references(reference):
    vectors = {"a": {"bias": jnp.ones(3)}, "b": jnp.ones(())}
    with pytest.raises(ValueError, match="reference"):
        sgo.stablegrad(reference).init(vectors)


def test_no_weight_leaf_is_fine_for_a_fixed_reference():
    vectors = {"a": {"bias": jnp.ones(3)}}
    tx = sgo.stablegrad(1.0)
    updates, _ = tx.update(vectors, tx.init(vectors))
    assert updates["a"]["bias"] is vectors["a"]["bias"]
    for reference in ("prediction", "given"):
        tx = sgo.stablegrad(reference)
        updates, _ = tx.update(vectors, tx.init(vectors), reference_scale=2.0)
        assert updates["a"]["bias"] is vectors["a"]["bias"]


def test_traced_hyperparameters_are_not_checked():
    tx = optax.inject_hyperparams(sgo.stablegrad)(eps=1e-12, max_scale=10.0)
    state = tx.init(PARAMS)

    @jax.jit
    def step(state, eps):
        state.hyperparams["eps"] = eps
        return tx.update(PARAMS, state)[1]

    step(state, jnp.float32(1e-10))
    # A concrete bad value injected later is caught when the transform is rebuilt.
    state.hyperparams["max_scale"] = jnp.float32(0.5)
    with pytest.raises(ValueError, match="max_scale"):
        tx.update(PARAMS, state)


def test_mask_of_the_wrong_shape_raises():
    tx = sgo.stablegrad(1.0, mask=[True, False])
    with pytest.raises(ValueError, match="mask"):
        tx.init(PARAMS)


def test_updates_that_do_not_match_the_state_raise():
    tx = sgo.stablegrad()
    state = tx.init(PARAMS)
    fewer = {k: v for k, v in PARAMS.items() if k != "Dense_1"}
    with pytest.raises(ValueError, match="weighted layers"):
        tx.update(fewer, state)
