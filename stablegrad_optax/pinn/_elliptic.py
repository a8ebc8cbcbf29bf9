"""Poisson and Helmholtz problems on a square, with exact solutions."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from stablegrad_optax.pinn._problem import (
    Problem,
    ScalarField,
    directional_derivatives,
)


def value_and_laplacian(u: ScalarField, point: jax.Array):
    """u and the trace of its Hessian at one point, one axis at a time."""
    axes = jnp.eye(point.shape[0], dtype=point.dtype)
    derivatives = [directional_derivatives(u, point, e) for e in axes]
    return derivatives[0][0], sum(second for _, _, second in derivatives)


def _value_and_laplacian_outputs(u: ScalarField, point: jax.Array) -> dict:
    value, lap = value_and_laplacian(u, point)
    return {"u": value, "laplacian": lap}


@dataclasses.dataclass(frozen=True)
class Poisson(Problem):
    """-Laplacian u = f on [0, 1]^2, u = sin(k pi x) sin(k pi y), Dirichlet data.

    Attributes:
      k: the wave number of the exact solution.
    """

    name: str = "poisson"
    lower: tuple[float, ...] = (0.0, 0.0)
    upper: tuple[float, ...] = (1.0, 1.0)
    k: float = 2.0

    def exact(self, points):
        points = jnp.asarray(points)
        w = self.k * jnp.pi
        return jnp.sin(w * points[..., 0]) * jnp.sin(w * points[..., 1])

    def source(self, point: jax.Array) -> jax.Array:
        """f = 2 (k pi)^2 sin(k pi x) sin(k pi y)."""
        return 2 * (self.k * jnp.pi) ** 2 * self.exact(point)

    def _point_outputs(self, u, point):
        return _value_and_laplacian_outputs(u, point)

    def _residual_of(self, outputs, point):
        return -outputs["laplacian"] - self.source(point)


@dataclasses.dataclass(frozen=True)
class Helmholtz(Problem):
    """Laplacian u + k^2 u = q on [-1, 1]^2, u = sin(a1 pi x) sin(a2 pi y).

    As in Wang, Teng & Perdikaris (2021), with a1 = 1, a2 = 4, k = 1.

    Attributes:
      a1: wave number of the solution along x.
      a2: wave number of the solution along y.
      k: the Helmholtz wave number.
    """

    name: str = "helmholtz"
    lower: tuple[float, ...] = (-1.0, -1.0)
    upper: tuple[float, ...] = (1.0, 1.0)
    a1: float = 1.0
    a2: float = 4.0
    k: float = 1.0

    def exact(self, points):
        points = jnp.asarray(points)
        return jnp.sin(self.a1 * jnp.pi * points[..., 0]) * jnp.sin(
            self.a2 * jnp.pi * points[..., 1]
        )

    def source(self, point: jax.Array) -> jax.Array:
        """q = (k^2 - (a1 pi)^2 - (a2 pi)^2) u."""
        scale = self.k**2 - (self.a1 * jnp.pi) ** 2 - (self.a2 * jnp.pi) ** 2
        return scale * self.exact(point)

    def _point_outputs(self, u, point):
        return _value_and_laplacian_outputs(u, point)

    def _residual_of(self, outputs, point):
        value, lap = outputs["u"], outputs["laplacian"]
        return lap + self.k**2 * value - self.source(point)
