"""The default run: a deep tanh PINN on 2-D Poisson, sharded over every device.

Every other configuration imports this one and overrides a few fields with
`dataclasses.replace`.
"""

from __future__ import annotations

import dataclasses

LAYOUTS = ("dp", "fsdp", "2d")


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything a run depends on.

    Attributes:
      layout: "dp" (parameters replicated, batch sharded), "fsdp" (parameters
        and optimizer state sharded too, each leaf along its largest axis that
        the device count divides) or "2d" (a data x model mesh: batch over
        "data", parameters over "model").
      model_axis: devices on the "model" axis of the "2d" layout.
      depth: hidden layers of the MLP.
      width: units per hidden layer (a multiple of the device count shards
        every hidden kernel under "fsdp").
      init: "lecun", "glorot", "he", "critical" or "critical_orthogonal".
      learning_rate: Adam's learning rate after StableGrad.
      steps: optimisation steps in all (a resumed run continues to this).
      log_every: steps between host syncs (a log line, and a checkpoint when
        checkpointing).
      checkpoint: save parameters and optimizer state every `log_every`
        steps, and resume from the latest checkpoint in the work directory.
      num_interior: interior collocation points per step (all devices).
      num_boundary: boundary points per step (all devices).
      eval_resolution: evaluation grid points per axis.
      seed: seeds the initial parameters and the collocation points.
    """

    layout: str = "fsdp"
    model_axis: int = 2
    depth: int = 16
    width: int = 64
    init: str = "critical"
    learning_rate: float = 3e-4
    steps: int = 1000
    log_every: int = 100
    checkpoint: bool = True
    num_interior: int = 1024
    num_boundary: int = 1024
    eval_resolution: int = 101
    seed: int = 0


def get_config() -> Config:
    return Config()
