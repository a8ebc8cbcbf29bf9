"""A first training loop in Equinox, with the paper's StableGrad."""

import equinox as eqx
import jax
import jax.numpy as jnp

import stablegrad_optax as sgo

x = jax.random.normal(jax.random.key(0), (128, 2))
y = jnp.sin(x[:, :1]) * jnp.cos(x[:, 1:])
model = eqx.nn.MLP(
    2, 1, width_size=32, depth=4, activation=jnp.tanh, key=jax.random.key(1)
)
tx = sgo.stablegrad_adam(1e-3, reference="prediction")
opt_state = tx.init(eqx.filter(model, eqx.is_inexact_array))


def squared_error(prediction, x, y):
    return jnp.mean((prediction - y) ** 2)


@eqx.filter_jit
def train_step(model, opt_state, x, y):
    # Split the model into its arrays and the rest; `predict` puts them together.
    params, static = eqx.partition(model, eqx.is_inexact_array)

    def predict(params, x, y):
        return jax.vmap(eqx.combine(params, static))(x)

    step = sgo.prediction_value_and_grad(predict, squared_error)
    value, grads, scale = step(params, x, y)
    updates, opt_state = tx.update(grads, opt_state, params, reference_scale=scale)
    return eqx.apply_updates(model, updates), opt_state, value


for _ in range(20):
    model, opt_state, value = train_step(model, opt_state, x, y)
print(f"loss after 20 steps: {value:.4f}")
