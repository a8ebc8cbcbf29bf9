"""Per-layer statistics and factors, logged from a jitted step."""

import jax
import jax.numpy as jnp
import optax
from flax import linen as nn

import stablegrad_optax as sgo

model = nn.Sequential([nn.Dense(16), nn.tanh, nn.Dense(16), nn.tanh, nn.Dense(1)])
x = jax.random.normal(jax.random.key(0), (64, 3))
y = jnp.sum(x, axis=1, keepdims=True)
params = model.init(jax.random.key(1), x)["params"]
tx = sgo.stablegrad_adam(1e-3)
opt_state = tx.init(params)


def loss_fn(params):
    return jnp.mean((model.apply({"params": params}, x) - y) ** 2)


# [start diagnostics]
grads = jax.grad(loss_fn)(params)
stats = sgo.layer_statistics(grads)  # {"layers_0": 0.0031, ...}, jit-able
print(sgo.imbalance(stats))  # Imbalance(ratio=..., largest=..., ...)
# [end diagnostics]

# [start logging]
names = sgo.layer_names(params)


@jax.jit
def train_step(params, opt_state):
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    sg = optax.tree_utils.tree_get(opt_state, "StableGradState")
    metrics = {"loss": loss, "reference": sg.reference}
    metrics |= {f"grad_std/{n}": s for n, s in zip(names, sg.stats, strict=True)}
    metrics |= {f"factor/{n}": f for n, f in zip(names, sg.factors, strict=True)}
    return optax.apply_updates(params, updates), opt_state, metrics


# [end logging]


params, opt_state, metrics = train_step(params, opt_state)
assert set(metrics) >= {"loss", "reference", "grad_std/layers_4", "factor/layers_0"}
