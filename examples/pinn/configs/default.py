"""The default run: the field's standard PINN recipe with and without StableGrad.

A tanh MLP of 8 hidden layers of 50 on viscous Burgers, critical init, trained
with the core of jaxpi's recipe (Adam at peak learning rate 1e-3, a 10% linear
warmup then exponential decay to 10% of the peak, 256 + 256 points resampled
every step, gradient-norm loss weighting every 100 steps), alone and with the
paper's StableGrad before Adam, three seeds per recipe trained together.

It is the long-budget campaign's depth-8 Burgers cell
(`benchmarks/campaigns/pinn_long_budget.json`) at 4,000 of its 20,000 steps,
so that it trains in a few minutes on a 2-core CPU; the table prints the
campaign's 20,000-step results for the same cell beside the run.

Every other configuration imports this one and overrides a few fields with
`dataclasses.replace`.
"""

from __future__ import annotations

import dataclasses

# The recipes the example can train, in the campaign's names (`train.RECIPES`
# builds them); the default run trains the first two.
RECIPES = (
    "adam+warmup+decay+gradnorm",
    "stablegrad(prediction)+adam+warmup+decay+gradnorm",
    "adam+warmup+decay",
    "stablegrad(prediction)+adam+warmup+decay",
)


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything a run depends on.

    Attributes:
      problem: "burgers", "poisson" or "helmholtz".
      depth: hidden layers.
      width: units per hidden layer.
      activation: "tanh", "sin", "gelu" or "silu".
      init: "lecun", "glorot", "he", "critical" or "critical_orthogonal".
      recipes: names from `RECIPES`, trained in this order.
      learning_rate: the schedule's peak, the same for every recipe.
      warmup_fraction: the linear warmup's share of the run.
      decay_to: where the exponential decay ends, as a fraction of the peak.
      loss_weighting_every: steps between gradient-norm weight updates.
      prediction_reading: which outputs set the paper's reference (see
        `stablegrad_optax.pinn.reading_mask`): "data", "values" or "all".
      steps: optimisation steps per run.
      log_every: steps per jitted chunk; one log record per chunk.
      num_interior: interior collocation points per step.
      num_boundary: boundary (and initial) points per step.
      eval_resolution: evaluation grid points per axis.
      seeds: one run per seed, all trained together (`jax.vmap`); a seed sets
        the initial parameters and the collocation points, the same for every
        recipe.
      threshold: the relative L2 error the table counts seeds below.
      progress: show a tqdm progress bar.
    """

    problem: str = "burgers"
    depth: int = 8
    width: int = 50
    activation: str = "tanh"
    init: str = "critical"
    recipes: tuple[str, ...] = RECIPES[:2]
    learning_rate: float = 1e-3
    warmup_fraction: float = 0.1
    decay_to: float = 0.1
    loss_weighting_every: int = 100
    prediction_reading: str = "data"
    steps: int = 4000
    log_every: int = 100
    num_interior: int = 256
    num_boundary: int = 256
    eval_resolution: int = 101
    seeds: tuple[int, ...] = (1, 2, 3)
    threshold: float = 0.1
    progress: bool = True


def get_config() -> Config:
    return Config()
