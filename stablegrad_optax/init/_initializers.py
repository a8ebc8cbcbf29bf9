"""Named (kernel_init, bias_init) pairs for Dense layers."""

from __future__ import annotations

import math
from collections.abc import Callable

import flax.linen as nn
import jax

from stablegrad_optax.init._critical import critical_variances

INITIALIZERS = ("lecun", "glorot", "he", "critical", "critical_orthogonal")


def _scaled_orthogonal(weight_variance: float) -> Callable:
    """Orthogonal kernels; outputs have variance weight_variance |x|^2 / fan_in."""

    def init(key, shape, dtype=jax.numpy.float32):
        fan_in, fan_out = shape[-2], shape[-1]
        scale = math.sqrt(weight_variance * max(1.0, fan_out / fan_in))
        return nn.initializers.orthogonal(scale)(key, shape, dtype)

    return init


def get_initializers(
    name: str,
    activation: Callable[[jax.Array], jax.Array] = jax.numpy.tanh,
    bias_variance: float = 0.05,
) -> tuple[Callable, Callable]:
    """The (kernel_init, bias_init) pair called `name`, for Flax Dense layers.

    * "lecun", "glorot", "he": the usual variance scalings, zero biases.
    * "critical": Gaussian weights of variance sigma_w^2 / fan_in and biases of
      variance sigma_b^2 = `bias_variance`, at the critical point of
      `activation` (`critical_variances`).
    * "critical_orthogonal": the same variances with orthogonal weights.

    Args:
      name: one of `INITIALIZERS`.
      activation: the network's activation (for the critical ones).
      bias_variance: sigma_b^2 for the critical ones.

    Returns:
      (kernel_init, bias_init).
    """
    if name not in INITIALIZERS:
        raise ValueError(f"init must be one of {INITIALIZERS}, got {name!r}.")
    zeros = nn.initializers.zeros
    if name == "lecun":
        return nn.initializers.lecun_normal(), zeros
    if name == "glorot":
        return nn.initializers.glorot_normal(), zeros
    if name == "he":
        return nn.initializers.he_normal(), zeros
    weight_variance, _ = critical_variances(activation, float(bias_variance))
    bias_init = nn.initializers.normal(math.sqrt(bias_variance))
    if name == "critical":
        kernel_init = nn.initializers.variance_scaling(
            weight_variance, "fan_in", "normal"
        )
    else:
        kernel_init = _scaled_orthogonal(weight_variance)
    return kernel_init, bias_init
