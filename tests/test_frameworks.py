"""The framework recipes: Flax NNX, linen TrainState, Equinox, multi_transform, logging.

Each test trains for a few jitted steps the way the docs show (getting started;
how it works: the state) and checks that the loss falls and StableGrad did its
part (the output layer's reference).
"""

import equinox as eqx
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from flax.training import train_state

import stablegrad_optax as sgo

X = jax.random.normal(jax.random.key(0), (64, 2))
Y = jnp.sin(2 * X[:, :1]) * X[:, 1:]


def test_flax_nnx_optimizer():
    class Net(nnx.Module):
        def __init__(self, rngs: nnx.Rngs):
            self.hidden = nnx.List(
                [nnx.Linear(2, 16, rngs=rngs)]
                + [nnx.Linear(16, 16, rngs=rngs) for _ in range(4)]
            )
            self.head = nnx.Linear(16, 1, rngs=rngs)

        def __call__(self, x):
            for layer in self.hidden:
                x = jnp.tanh(layer(x))
            return self.head(x)

    model = Net(nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, sgo.stablegrad_adam(1e-2), wrt=nnx.Param)

    @nnx.jit
    def train_step(model, optimizer, x, y):
        loss, grads = nnx.value_and_grad(lambda m: jnp.mean((m(x) - y) ** 2))(model)
        optimizer.update(model, grads)
        return loss

    losses = [float(train_step(model, optimizer, X, Y)) for _ in range(30)]
    assert losses[-1] < 0.5 * losses[0]
    state = optax.tree_utils.tree_get(optimizer.opt_state, "StableGradState")
    names = sgo.layer_names(nnx.state(model, nnx.Param))
    assert names[int(state.reference_index)] == "head"


def test_flax_linen_train_state():
    model = nn.Sequential([nn.Dense(16), jnp.tanh, nn.Dense(16), jnp.tanh, nn.Dense(1)])
    params = model.init(jax.random.key(0), X)["params"]
    state = train_state.TrainState.create(
        apply_fn=model.apply, params=params, tx=sgo.stablegrad_adam(1e-2)
    )

    @jax.jit
    def train_step(state, x, y):
        def loss_fn(params):
            return jnp.mean((state.apply_fn({"params": params}, x) - y) ** 2)

        loss, grads = jax.value_and_grad(loss_fn)(state.params)
        return state.apply_gradients(grads=grads), loss

    losses = []
    for _ in range(30):
        state, loss = train_step(state, X, Y)
        losses.append(float(loss))
    assert losses[-1] < 0.5 * losses[0]
    sg = optax.tree_utils.tree_get(state.opt_state, "StableGradState")
    assert sgo.layer_names(params)[int(sg.reference_index)] == "layers_4"


def test_equinox_filtered_parameters():
    model = eqx.nn.MLP(2, 1, width_size=16, depth=4, key=jax.random.key(0))
    tx = sgo.stablegrad_adam(1e-2)
    opt_state = tx.init(eqx.filter(model, eqx.is_inexact_array))

    @eqx.filter_jit
    def train_step(model, opt_state, x, y):
        def loss_fn(m):
            return jnp.mean((jax.vmap(m)(x) - y) ** 2)

        loss, grads = eqx.filter_value_and_grad(loss_fn)(model)
        params = eqx.filter(model, eqx.is_inexact_array)
        updates, opt_state = tx.update(grads, opt_state, params)
        return eqx.apply_updates(model, updates), opt_state, loss

    losses = []
    for _ in range(30):
        model, opt_state, loss = train_step(model, opt_state, X, Y)
        losses.append(float(loss))
    assert losses[-1] < 0.5 * losses[0]
    sg = optax.tree_utils.tree_get(opt_state, "StableGradState")
    names = sgo.layer_names(eqx.filter(model, eqx.is_inexact_array))
    assert names[int(sg.reference_index)] == "layers/4"


def test_multi_transform_stablegrad_on_the_trunk_plain_on_the_embedding():
    params = {
        "embedding": {"table": jax.random.normal(jax.random.key(1), (10, 8))},
        "trunk": {
            f"Dense_{i}": {"kernel": jax.random.normal(jax.random.key(i), (8, 8))}
            for i in range(3)
        },
    }
    # Gradient scales 1, 10, 100 across the trunk's layers.
    grads = {
        "embedding": params["embedding"],
        "trunk": {
            name: {"kernel": 10.0**i * layer["kernel"]}
            for i, (name, layer) in enumerate(params["trunk"].items())
        },
    }
    # SGD, not Adam, so that a rescale shows in the update.
    tx = optax.multi_transform(
        {"trunk": sgo.stablegrad_sgd(0.1), "embedding": optax.sgd(0.1)},
        {"embedding": "embedding", "trunk": "trunk"},
    )
    updates, state = jax.jit(tx.update)(grads, tx.init(params), params)
    np.testing.assert_allclose(
        updates["embedding"]["table"], -0.1 * grads["embedding"]["table"], rtol=1e-6
    )
    sg = optax.tree_utils.tree_get(state, "StableGradState")
    assert sg.stats.shape == (3,)  # the trunk's layers only
    assert int(sg.reference_index) == 2  # Dense_2, the last of the trunk
    reference = float(np.std(grads["trunk"]["Dense_2"]["kernel"]))
    for layer in updates["trunk"].values():
        assert float(np.std(layer["kernel"])) == pytest.approx(0.1 * reference, 1e-5)


def test_logging_the_per_layer_statistics_each_step():
    model = nn.Sequential([nn.Dense(16), jnp.tanh, nn.Dense(16), jnp.tanh, nn.Dense(1)])
    params = model.init(jax.random.key(0), X)["params"]
    tx = sgo.stablegrad_adam(1e-2)
    names = sgo.layer_names(params)

    @jax.jit
    def train_step(params, opt_state):
        loss, grads = jax.value_and_grad(
            lambda p: jnp.mean((model.apply({"params": p}, X) - Y) ** 2)
        )(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        sg = optax.tree_utils.tree_get(opt_state, "StableGradState")
        metrics = {"loss": loss, "reference": sg.reference}
        metrics |= {f"grad_std/{n}": s for n, s in zip(names, sg.stats, strict=True)}
        return optax.apply_updates(params, updates), opt_state, metrics

    opt_state = tx.init(params)
    history = []
    for _ in range(3):
        params, opt_state, metrics = train_step(params, opt_state)
        history.append(jax.device_get(metrics))
    assert set(history[0]) == {"loss", "reference"} | {f"grad_std/{n}" for n in names}
    assert history[-1]["reference"] == history[-1]["grad_std/layers_4"]
