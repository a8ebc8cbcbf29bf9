"""Flax models: a deep MLP for PINNs.

Examples:
  >>> import jax, jax.numpy as jnp
  >>> from stablegrad_optax.models import MLP
  >>> model = MLP(depth=3, width=8, input_bounds=((0.0, 0.0), (1.0, 1.0)))
  >>> params = model.init(jax.random.key(0), jnp.ones((4, 2)))["params"]
  >>> sorted(params)
  ['head', 'hidden_0', 'hidden_1', 'hidden_2']
"""

from stablegrad_optax.models._mlp import ACTIVATIONS as ACTIVATIONS
from stablegrad_optax.models._mlp import MLP as MLP

__all__ = ("ACTIVATIONS", "MLP")
