"""Two classic DeepXDE problems, written the DeepXDE way (JAX backend).

Burgers' equation as in DeepXDE's own example (nu = 0.01 / pi, u(x, 0) =
-sin(pi x), zero boundary values; here t runs to 1 so that the reference
covers the whole domain) and a 2-D Poisson problem with an exact solution.
The reference solutions come from `stablegrad_optax.pinn`: the Cole-Hopf
solution for Burgers, the closed form for Poisson.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import deepxde as dde
import numpy as np

from stablegrad_optax import pinn


@dataclasses.dataclass(frozen=True)
class Setup:
    """A DeepXDE data object, its input size and the reference on a grid."""

    data: dde.data.Data
    input_dim: int
    grid: np.ndarray  # (n, input_dim) evaluation points
    reference: np.ndarray  # (n,) reference solution there


def burgers(num_domain: int, num_boundary: int, num_initial: int) -> Setup:
    reference = pinn.get_problem("burgers")
    geom = dde.geometry.Interval(-1, 1)
    geomtime = dde.geometry.GeometryXTime(geom, dde.geometry.TimeDomain(0, 1))

    def pde(x, y):
        u = y[0]
        u_x, _ = dde.grad.jacobian(y, x, i=0, j=0)
        u_t, _ = dde.grad.jacobian(y, x, i=0, j=1)
        u_xx, _ = dde.grad.hessian(y, x, i=0, j=0)
        return u_t + u * u_x - reference.nu * u_xx

    boundary = dde.icbc.DirichletBC(geomtime, lambda x: 0, _on_boundary)
    initial = dde.icbc.IC(
        geomtime, lambda x: -np.sin(np.pi * x[:, 0:1]), lambda _, on: on
    )
    data = dde.data.TimePDE(
        geomtime,
        pde,
        [boundary, initial],
        num_domain=num_domain,
        num_boundary=num_boundary,
        num_initial=num_initial,
    )
    return _setup(data, reference)


def poisson(num_domain: int, num_boundary: int, num_initial: int = 0) -> Setup:
    """-Laplacian u = 2 pi^2 sin(pi x) sin(pi y) on [0, 1]^2, u = 0 on the edge."""
    del num_initial
    reference = pinn.get_problem("poisson", k=1.0)
    geom = dde.geometry.Rectangle([0, 0], [1, 1])

    def pde(x, y):
        u_xx, _ = dde.grad.hessian(y, x, i=0, j=0)
        u_yy, _ = dde.grad.hessian(y, x, i=1, j=1)
        return -u_xx - u_yy - reference.source(x)[:, None]

    boundary = dde.icbc.DirichletBC(geom, lambda x: 0, _on_boundary)
    data = dde.data.PDE(
        geom, pde, [boundary], num_domain=num_domain, num_boundary=num_boundary
    )
    return _setup(data, reference)


PROBLEMS: dict[str, Callable[..., Setup]] = {"burgers": burgers, "poisson": poisson}


def _on_boundary(_, on_boundary):
    return on_boundary


def _setup(data, reference: pinn.Problem, resolution: int = 101) -> Setup:
    return Setup(
        data=data,
        input_dim=reference.dim,
        grid=reference.grid(resolution),
        reference=np.asarray(reference.reference_on_grid(resolution)),
    )


def relative_l2(model: dde.Model, setup: Setup) -> float:
    return float(pinn.relative_l2(model.predict(setup.grid), setup.reference))
