"""Activation-aware ("edge of chaos") initialisation by Gauss-Hermite quadrature.

In a wide random network with weights ~ N(0, sigma_w^2 / fan_in) and biases
~ N(0, sigma_b^2), the pre-activation variance follows the map
q -> sigma_w^2 E[phi(sqrt(q) z)^2] + sigma_b^2 (z ~ N(0, 1)), and the mean
squared Jacobian gain of a layer at its fixed point q* is
chi = sigma_w^2 E[phi'(sqrt(q*) z)^2]. Below chi = 1 signals collapse with
depth, above it they turn chaotic; the critical line chi = 1 with a non-trivial
q* keeps deep networks trainable (Poole et al. 2016, Schoenholz et al. 2017).
`critical_variances` solves for (sigma_w^2, q*) given sigma_b^2.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(161)
_WEIGHTS = _WEIGHTS / _WEIGHTS.sum()  # expectations over z ~ N(0, 1)


def _gaussian_mean(fn: Callable[[np.ndarray], np.ndarray], q: float) -> float:
    return float(np.sum(_WEIGHTS * fn(np.sqrt(q) * _NODES)))


@functools.lru_cache(maxsize=64)
def critical_variances(
    activation: Callable[[jax.Array], jax.Array], bias_variance: float = 0.05
) -> tuple[float, float]:
    """The critical weight variance sigma_w^2 (times 1/fan_in) and the fixed point q*.

    Solves q = sigma_w^2 E[phi(sqrt(q) z)^2] + sigma_b^2 together with
    sigma_w^2 E[phi'(sqrt(q) z)^2] = 1 by bisection on q, with expectations by
    161-node Gauss-Hermite quadrature.

    Args:
      activation: the activation function phi (differentiable with `jax.grad`).
      bias_variance: sigma_b^2, the variance of the biases (> 0).

    Returns:
      (weight_variance, q_star).

    Raises:
      ValueError: if `bias_variance` is not positive or no critical point exists.

    Examples:
      >>> import jax.numpy as jnp
      >>> from stablegrad_optax.init import critical_variances
      >>> w, q = critical_variances(jnp.tanh, 0.05)
      >>> print(f"{w:.3f} {q:.3f}")
      1.761 0.570
    """
    if not bias_variance > 0:
        raise ValueError(
            f"bias_variance must be > 0 (at 0 the fixed point is q* = 0), got "
            f"{bias_variance!r}."
        )
    phi = lambda v: np.asarray(activation(jnp.asarray(v)), np.float64)
    dphi = jax.vmap(jax.grad(lambda v: activation(v)))
    dphi_np = lambda v: np.asarray(dphi(jnp.asarray(v, jnp.float32)), np.float64)

    def weight_variance(q):
        return 1.0 / _gaussian_mean(lambda v: dphi_np(v) ** 2, q)

    def gap(q):
        return weight_variance(q) * _gaussian_mean(lambda v: phi(v) ** 2, q) + (
            bias_variance - q
        )

    low, high = 1e-8, 1.0
    while gap(high) > 0:
        high *= 2.0
        if high > 1e6:
            raise ValueError("no critical point found for this activation.")
    for _ in range(100):
        mid = 0.5 * (low + high)
        low, high = (mid, high) if gap(mid) > 0 else (low, mid)
    q_star = 0.5 * (low + high)
    return weight_variance(q_star), q_star
