"""PDE problems for physics-informed networks, with exact or reference solutions.

Each problem gives its domain, `exact(points)`, `residual(u, point)` written
with `directional_derivatives` (nested `jax.jvp`), samplers, `losses(u, batch)`
(a dict of named terms) and the relative L2 error on an evaluation grid.

Examples:
  >>> import jax, jax.numpy as jnp
  >>> from stablegrad_optax import pinn
  >>> problem = pinn.get_problem("poisson", k=1)
  >>> batch = problem.sample(jax.random.key(0), 64, 32)
  >>> terms = problem.losses(lambda p: problem.exact(p), batch)
  >>> sorted(terms)
  ['boundary', 'residual']
  >>> bool(terms["residual"] < 1e-6)
  True
"""

from __future__ import annotations

from stablegrad_optax.pinn._burgers import Burgers as Burgers
from stablegrad_optax.pinn._burgers import cole_hopf as cole_hopf
from stablegrad_optax.pinn._elliptic import Helmholtz as Helmholtz
from stablegrad_optax.pinn._elliptic import Poisson as Poisson
from stablegrad_optax.pinn._problem import Problem as Problem
from stablegrad_optax.pinn._problem import (
    directional_derivatives as directional_derivatives,
)
from stablegrad_optax.pinn._problem import relative_l2 as relative_l2
from stablegrad_optax.pinn._train import LOSS_WEIGHTINGS as LOSS_WEIGHTINGS
from stablegrad_optax.pinn._train import PREDICTION_READINGS as PREDICTION_READINGS
from stablegrad_optax.pinn._train import TrainState as TrainState
from stablegrad_optax.pinn._train import grad_norm_weights as grad_norm_weights
from stablegrad_optax.pinn._train import make_chunk as make_chunk
from stablegrad_optax.pinn._train import reading_mask as reading_mask
from stablegrad_optax.pinn._train import scalar_field as scalar_field
from stablegrad_optax.pinn._train import train as train

PROBLEMS = {"burgers": Burgers, "helmholtz": Helmholtz, "poisson": Poisson}


def get_problem(name: str, **options) -> Problem:
    """The problem called `name` ("burgers", "poisson", "helmholtz") with options.

    Args:
      name: the problem's name.
      **options: fields of the problem's dataclass (e.g. ``k`` for Poisson,
        ``boundary_weight``).

    Returns:
      The `Problem`.

    Raises:
      ValueError: for an unknown name or option.
    """
    if name not in PROBLEMS:
        raise ValueError(f"problem must be one of {sorted(PROBLEMS)}, got {name!r}.")
    cls = PROBLEMS[name]
    known = {f.name for f in cls.__dataclass_fields__.values()} - {"name"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(
            f"unknown option(s) {unknown} for problem {name!r}; accepted: "
            f"{sorted(known)}."
        )
    return cls(**options)


__all__ = (
    "LOSS_WEIGHTINGS",
    "PREDICTION_READINGS",
    "PROBLEMS",
    "Burgers",
    "Helmholtz",
    "Poisson",
    "Problem",
    "TrainState",
    "cole_hopf",
    "directional_derivatives",
    "get_problem",
    "grad_norm_weights",
    "make_chunk",
    "reading_mask",
    "relative_l2",
    "scalar_field",
    "train",
)
