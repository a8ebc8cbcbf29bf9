"""A first training loop in Flax NNX, with the paper's StableGrad."""

import jax
import jax.numpy as jnp
from flax import nnx

import stablegrad_optax as sgo


class MLP(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.hidden = nnx.List(
            [nnx.Linear(2 if i == 0 else 32, 32, rngs=rngs) for i in range(4)]
        )
        self.head = nnx.Linear(32, 1, rngs=rngs)

    def __call__(self, x):
        for layer in self.hidden:
            x = jnp.tanh(layer(x))
        return self.head(x)


x = jax.random.normal(jax.random.key(0), (128, 2))
y = jnp.sin(x[:, :1]) * jnp.cos(x[:, 1:])
model = MLP(nnx.Rngs(1))
# The transform sees the pure parameter tree; `update` forwards extra keywords.
tx = sgo.stablegrad_adam(1e-3, reference="prediction")
optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)


def squared_error(prediction, x, y):
    return jnp.mean((prediction - y) ** 2)


@nnx.jit
def train_step(model, optimizer, x, y):
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    def predict(params, x, y):
        return nnx.merge(graphdef, params, rest)(x)

    step = sgo.prediction_value_and_grad(predict, squared_error)
    value, grads, scale = step(params, x, y)
    optimizer.update(model, grads, reference_scale=scale)
    return value


for _ in range(20):
    value = train_step(model, optimizer, x, y)
print(f"loss after 20 steps: {value:.4f}")
