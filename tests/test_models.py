"""The deep MLP of `stablegrad_optax.models`."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import stablegrad_optax as sgo
from stablegrad_optax import pinn
from stablegrad_optax.models import ACTIVATIONS, MLP


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_shapes_names_and_output_layer(activation):
    model = MLP(depth=12, width=6, activation=activation)
    x = jnp.ones((5, 2))
    params = jax.jit(model.init)(jax.random.key(0), x)["params"]
    assert model.apply({"params": params}, x).shape == (5, 1)
    assert len(params) == 13 and "head" in params
    state = sgo.stablegrad().init(params)
    assert sgo.layer_names(params)[int(state.reference_index)] == "head"


def test_input_bounds_map_the_box_to_minus_one_one():
    model = MLP(
        depth=0,
        input_bounds=((-1.0, 0.0), (1.0, 2.0)),
        kernel_init=nn.initializers.ones,
    )
    corners = jnp.array([[-1.0, 0.0], [1.0, 2.0], [0.0, 1.0]])
    params = model.init(jax.random.key(0), corners)
    np.testing.assert_allclose(model.apply(params, corners)[:, 0], [-2.0, 2.0, 0.0])


def test_bad_activation_and_sizes_raise():
    with pytest.raises(ValueError, match="activation"):
        MLP(activation="relu6").init(jax.random.key(0), jnp.ones((1, 2)))
    with pytest.raises(ValueError, match="width"):
        MLP(width=0).init(jax.random.key(0), jnp.ones((1, 2)))


@pytest.mark.slow
def test_a_pinn_residual_through_the_model():
    problem = pinn.get_problem("poisson")
    model = MLP(depth=2, width=8, input_bounds=(problem.lower, problem.upper))
    params = model.init(jax.random.key(0), jnp.ones((1, 2)))

    def u(point):
        return model.apply(params, point[None])[0, 0]

    batch = problem.sample(jax.random.key(1), 32, 16)
    terms = jax.jit(lambda b: problem.losses(u, b))(batch)
    assert all(bool(jnp.isfinite(v)) for v in terms.values())
    grads = jax.jit(
        jax.grad(lambda p: problem.loss(lambda q: model.apply(p, q[None])[0, 0], batch))
    )(params)
    assert set(sgo.layer_statistics(grads)) == {
        "params/head",
        "params/hidden_0",
        "params/hidden_1",
    }
