"""Initialisers: the usual ones and an activation-aware (critical) one.

Examples:
  >>> import jax, jax.numpy as jnp
  >>> from stablegrad_optax import init
  >>> from stablegrad_optax.models import MLP
  >>> kernel_init, bias_init = init.get_initializers("critical", jnp.tanh)
  >>> model = MLP(depth=4, width=16, kernel_init=kernel_init, bias_init=bias_init)
  >>> params = model.init(jax.random.key(0), jnp.ones((2, 2)))
"""

from stablegrad_optax.init._critical import critical_variances as critical_variances
from stablegrad_optax.init._initializers import INITIALIZERS as INITIALIZERS
from stablegrad_optax.init._initializers import get_initializers as get_initializers

__all__ = ("INITIALIZERS", "critical_variances", "get_initializers")
