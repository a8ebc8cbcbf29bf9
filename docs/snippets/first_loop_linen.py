"""A first training loop in Flax linen, with the paper's StableGrad."""

import jax
import jax.numpy as jnp
import optax
from flax import linen as nn

import stablegrad_optax as sgo


class MLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        for _ in range(4):
            x = nn.tanh(nn.Dense(32)(x))
        return nn.Dense(1)(x)


x = jax.random.normal(jax.random.key(0), (128, 2))
y = jnp.sin(x[:, :1]) * jnp.cos(x[:, 1:])
model = MLP()
params = model.init(jax.random.key(1), x)["params"]

# The paper's StableGrad: every layer's gradient std rescaled to the std of
# dL/d(prediction), which `prediction_value_and_grad` returns from the same
# backward pass as the gradients.
tx = optax.chain(sgo.stablegrad("prediction"), optax.adam(1e-3))
opt_state = tx.init(params)


def predict(params, x, y):
    return model.apply({"params": params}, x)


def loss(prediction, x, y):
    return jnp.mean((prediction - y) ** 2)


value_and_grad = sgo.prediction_value_and_grad(predict, loss)


@jax.jit
def train_step(params, opt_state, x, y):
    value, grads, scale = value_and_grad(params, x, y)
    updates, opt_state = tx.update(grads, opt_state, params, reference_scale=scale)
    return optax.apply_updates(params, updates), opt_state, value


for _ in range(20):
    params, opt_state, value = train_step(params, opt_state, x, y)
print(f"loss after 20 steps: {value:.4f}")
