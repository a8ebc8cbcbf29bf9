"""Viscous Burgers' equation with its Cole-Hopf reference solution."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from stablegrad_optax.pinn._problem import (
    Problem,
    box_grid,
    directional_derivatives,
    uniform,
)

# Quadrature over z = (x - y) / sqrt(4 nu t): the Gaussian factor exp(-z^2)
# outweighs exp(+-cos / (2 pi nu)) beyond |z| = 14 for nu >= 0.01 / pi.
_HALF_WIDTH = 14.0
_NODES = 8001
_CHUNK = 256


def _cole_hopf_chunk(x, t, nu):
    """u and u_x at points (x, t) with t > 0, float64, by the trapezoid rule."""
    z = np.linspace(-_HALF_WIDTH, _HALF_WIDTH, _NODES)
    s = np.sqrt(4.0 * nu * t)[:, None]
    y = x[:, None] - s * z[None, :]
    log_w = -np.cos(np.pi * y) / (2.0 * np.pi * nu) - z[None, :] ** 2
    w = np.exp(log_w - log_w.max(axis=1, keepdims=True))
    sin, cos = np.sin(np.pi * y), np.cos(np.pi * y)
    a, b = (sin * w).sum(axis=1), w.sum(axis=1)
    a_x = ((np.pi * cos + sin**2 / (2.0 * nu)) * w).sum(axis=1)
    b_x = (sin / (2.0 * nu) * w).sum(axis=1)
    return -a / b, -(a_x * b - a * b_x) / b**2


def cole_hopf(x, t, nu: float = 0.01 / np.pi) -> tuple[np.ndarray, np.ndarray]:
    """Burgers' solution u and its slope u_x for u(x, 0) = -sin(pi x).

    u = -(int sin(pi y) F dy) / (int F dy), with
    F = exp(-cos(pi y) / (2 pi nu) - (x - y)^2 / (4 nu t)), evaluated in float64
    on a fine uniform grid (the integrand is smooth and decays fast, so the
    trapezoid rule converges quickly); log-weights are shifted to avoid overflow.

    Args:
      x: positions, any shape.
      t: times (>= 0), broadcastable with `x`.
      nu: the viscosity.

    Returns:
      (u, u_x) as float64 arrays of the broadcast shape.
    """
    x, t = np.broadcast_arrays(np.asarray(x, np.float64), np.asarray(t, np.float64))
    shape = x.shape
    x, t = x.ravel(), t.ravel()
    u = -np.sin(np.pi * x)
    u_x = -np.pi * np.cos(np.pi * x)
    later = np.flatnonzero(t > 0)
    for start in range(0, len(later), _CHUNK):
        idx = later[start : start + _CHUNK]
        u[idx], u_x[idx] = _cole_hopf_chunk(x[idx], t[idx], nu)
    return u.reshape(shape), u_x.reshape(shape)


@functools.lru_cache(maxsize=8)
def _reference_on_grid(nu: float, lower, upper, resolution: int) -> np.ndarray:
    points = box_grid(lower, upper, resolution).astype(np.float64)
    return cole_hopf(points[:, 0], points[:, 1], nu)[0].astype(np.float32)


@dataclasses.dataclass(frozen=True)
class Burgers(Problem):
    """u_t + u u_x = nu u_xx on x in [-1, 1], t in [0, 1]; points are (x, t).

    u(x, 0) = -sin(pi x), u(-1, t) = u(1, t) = 0, nu = 0.01 / pi. The reference
    is the Cole-Hopf solution (`cole_hopf`), computed on the host in float64.

    Attributes:
      nu: the viscosity.
      initial_weight: weight of the initial-condition term in `loss`.
    """

    name: str = "burgers"
    lower: tuple[float, ...] = (-1.0, 0.0)
    upper: tuple[float, ...] = (1.0, 1.0)
    nu: float = 0.01 / np.pi
    initial_weight: float = 1.0

    def exact(self, points):
        points = np.asarray(points, np.float64)
        return cole_hopf(points[..., 0], points[..., 1], self.nu)[0].astype(np.float32)

    def _point_outputs(self, u, point):
        x_axis, t_axis = jnp.eye(2, dtype=point.dtype)
        u_value, u_x, u_xx = directional_derivatives(u, point, x_axis)
        u_t = jax.jvp(u, (point,), (t_axis,))[1]
        return {"u": u_value, "u_t": u_t, "u_x": u_x, "u_xx": u_xx}

    def _residual_of(self, outputs, point):
        del point
        u, u_x = outputs["u"], outputs["u_x"]
        return outputs["u_t"] + u * u_x - self.nu * outputs["u_xx"]

    def initial_values(self, points: jax.Array) -> jax.Array:
        return -jnp.sin(jnp.pi * points[..., 0])

    def boundary_values(self, points: jax.Array) -> jax.Array:
        return jnp.zeros(points.shape[:-1], jnp.float32)

    def sample_boundary(self, key, n):
        k_side, k_time = jax.random.split(key)
        x = jnp.where(jax.random.bernoulli(k_side, 0.5, (n,)), 1.0, -1.0)
        t = jax.random.uniform(k_time, (n,), minval=self.lower[1], maxval=self.upper[1])
        return jnp.stack([x, t], axis=-1)

    def sample_initial(self, key, n):
        x = uniform(key, n, self.lower[:1], self.upper[:1])
        return jnp.concatenate([x, jnp.zeros((n, 1), jnp.float32)], axis=-1)

    def sample(self, key, num_interior, num_boundary, num_initial=None):
        k_main, k_initial = jax.random.split(key)
        batch = super().sample(k_main, num_interior, num_boundary)
        initial = self.sample_initial(k_initial, num_initial or num_boundary)
        return {
            **batch,
            "initial": initial,
            "initial_values": self.initial_values(initial),
        }

    def _data_terms(self):
        return ("boundary", "initial")

    def weights(self):
        return {**super().weights(), "initial": self.initial_weight}

    def reference_on_grid(self, resolution: int = 101) -> np.ndarray:
        """The reference on `grid(resolution)`, cached."""
        return _reference_on_grid(self.nu, self.lower, self.upper, resolution)
