"""Finding the output layer: natural order, insertion order, head names, jaxpr."""

import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
import pytest
from flax import nnx
from helpers import MLP

import stablegrad_optax as sgo


def _output_name(params, **kwargs):
    state = sgo.stablegrad(**kwargs).init(params)
    return sgo.layer_names(params)[int(state.reference_index)]


@pytest.mark.parametrize("jit", [False, True])
def test_natural_order_on_a_twelve_plus_layer_linen_mlp(jit):
    model, x = MLP(depth=13, width=4), jnp.ones((2, 2))
    init = jax.jit(model.init) if jit else model.init
    params = init(jax.random.key(0), x)["params"]
    assert sorted(params)[-1] == "Dense_9"  # what flatten order would pick
    assert _output_name(params) == "Dense_13"
    assert _output_name({"params": params}) == "params/Dense_13"


def test_head_found_in_eager_and_jitted_linen_init():
    model, x = MLP(depth=11, width=6, named=True), jnp.ones((2, 2))
    eager = model.init(jax.random.key(0), x)["params"]
    jitted = jax.jit(model.init)(jax.random.key(0), x)["params"]
    assert list(jitted)[-1] == "hidden_9"
    assert _output_name(eager) == "head"
    assert _output_name(jitted) == "head"
    grads = jax.tree.map(jnp.ones_like, eager)  # tree_map sorts the dicts
    assert _output_name(grads) == "head"


def test_nnx_sequential_trunk_and_out():
    class Net(nnx.Module):
        def __init__(self, rngs):
            self.trunk = nnx.Sequential(
                *[nnx.Linear(3, 3, rngs=rngs) for _ in range(11)]
            )
            self.out = nnx.Linear(3, 1, rngs=rngs)

        def __call__(self, x):
            return self.out(jnp.tanh(self.trunk(x)))

    model = Net(nnx.Rngs(0))
    tx = sgo.stablegrad()
    optimizer = nnx.Optimizer(model, optax.chain(tx, optax.sgd(1e-2)), wrt=nnx.Param)
    state = optimizer.opt_state[0]
    params = nnx.state(model, nnx.Param)
    names = sgo.layer_names(params)
    assert names[-1] == "trunk/layers/10"  # natural order ends in a hidden layer
    assert names[int(state.reference_index)] == "out"

    x = jnp.ones((4, 3))
    grads = nnx.grad(lambda m: jnp.sum(m(x) ** 2))(model)
    optimizer.update(model, grads)
    assert int(optimizer.opt_state[0].count) == 1
    # A raw nnx.grad State carries `.value` keys; grouping sees through them.
    assert set(sgo.layer_statistics(grads)) == set(names)


def test_insertion_order_signal_when_names_say_nothing():
    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = jnp.tanh(nn.Dense(4, name="z_first")(x))
            x = jnp.tanh(nn.Dense(4, name="m_second")(x))
            return nn.Dense(1, name="a_last")(x)

    x = jnp.ones((2, 2))
    eager = Net().init(jax.random.key(0), x)["params"]
    assert _output_name(eager) == "a_last"
    jitted = jax.jit(Net().init)(jax.random.key(0), x)["params"]
    with pytest.raises(ValueError, match="output_layer") as info:
        sgo.stablegrad().init(jitted)
    for name in ("a_last", "m_second", "z_first"):
        assert name in str(info.value)


def test_disagreeing_signals_raise():
    # An unsorted dict (a real creation order) whose last layer is not the head.
    params = {
        "head": {"kernel": jnp.ones((4, 1))},
        "z_body": {"kernel": jnp.ones((2, 4))},
        "a_body": {"kernel": jnp.ones((4, 4))},
    }
    with pytest.raises(ValueError, match="disagree") as info:
        sgo.stablegrad().init(params)
    assert "'a_body'" in str(info.value) and "'head'" in str(info.value)
    assert _output_name(params, output_layer="head") == "head"


def test_several_head_names_are_ambiguous():
    params = {
        "head": {"w": jnp.ones((2, 2))},
        "output": {"w": jnp.ones((2, 2))},
    }
    with pytest.raises(ValueError, match="output_layer"):
        sgo.stablegrad().init(params)
    nested = {"head": {f"Dense_{i}": {"w": jnp.ones((2, 2))} for i in range(3)}}
    nested["trunk"] = {"w": jnp.ones((2, 2))}
    assert _output_name(nested) == "head/Dense_2"


def test_find_output_layer_from_the_forward_pass():
    model, x = MLP(depth=4, width=6, named=True), jnp.ones((3, 2))
    params = jax.jit(model.init)(jax.random.key(0), x)["params"]

    def apply(p, x):
        return model.apply({"params": p}, x)

    assert sgo.find_output_layer(apply, params, x) == "head"
    mlp = MLP(depth=12, width=4)
    mlp_params = jax.jit(mlp.init)(jax.random.key(0), x)["params"]
    found = sgo.find_output_layer(
        lambda p, x: mlp.apply({"params": p}, x), mlp_params, x
    )
    assert found == "Dense_12"
    # Works through a jitted (pjit) forward pass too.
    jitted = jax.jit(apply)
    assert sgo.find_output_layer(jitted, params, x) == "head"


def test_find_output_layer_reports_ties():
    params = {"a": {"w": jnp.ones((2, 1))}, "b": {"w": jnp.ones((2, 1))}}

    def apply(p, x):
        return x @ p["a"]["w"] + x @ p["b"]["w"]

    with pytest.raises(ValueError, match="equally near"):
        sgo.find_output_layer(apply, params, jnp.ones((3, 2)))


def test_explicit_output_layer_must_match_exactly_one():
    params = {f"Dense_{i}": {"kernel": jnp.ones((2, 2))} for i in range(3)}
    with pytest.raises(ValueError, match="matches no layer") as info:
        sgo.stablegrad(output_layer="Dense_7").init(params)
    assert "Dense_0" in str(info.value)
    with pytest.raises(ValueError, match="matches 3 layers"):
        sgo.stablegrad(output_layer=re.compile(r"Dense_\d")).init(params)
    with pytest.raises(ValueError, match="matches no layer"):
        sgo.stablegrad(output_layer=re.compile(r"Dense")).init(params)  # fullmatch
