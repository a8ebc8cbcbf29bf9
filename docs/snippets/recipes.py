"""The one-line recipes: StableGrad as an optax transformation."""

import jax
import jax.numpy as jnp
import optax

import stablegrad_optax as sgo

params = {
    "embedding": {"table": jnp.ones((10, 4))},
    "trunk": {"Dense_0": {"kernel": jnp.ones((4, 4)), "bias": jnp.zeros(4)}},
}
grads = jax.tree.map(lambda p: 0.1 * jnp.ones_like(p), params)

# [start recipes]
# Output-layer reference: needs nothing from the training step.
tx = optax.chain(sgo.stablegrad(), optax.adam(1e-3))
tx = sgo.stablegrad_adamw(1e-3, weight_decay=1e-4)  # the same, as one alias
tx = optax.inject_hyperparams(sgo.stablegrad_adam)(learning_rate=1e-3)  # schedulable

# StableGrad on the trunk, plain Adam on an embedding table.
tx = optax.multi_transform(
    {"trunk": sgo.stablegrad_adam(1e-3), "embedding": optax.adam(1e-3)},
    {"embedding": "embedding", "trunk": "trunk"},  # labels, a tree like params
)
# [end recipes]

opt_state = tx.init(params)
updates, opt_state = tx.update(grads, opt_state, params)
assert jax.tree.structure(updates) == jax.tree.structure(params)
