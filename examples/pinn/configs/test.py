"""A tiny run for tests and smoke checks: seconds on a CPU.

Two recipes between them take every path: with and without StableGrad, with
and without the loss weighting.
"""

from __future__ import annotations

import dataclasses

from configs import default


def get_config() -> default.Config:
    return dataclasses.replace(
        default.get_config(),
        recipes=(
            "adam+warmup+decay+gradnorm",
            "stablegrad(prediction)+adam+warmup+decay",
        ),
        depth=2,
        width=8,
        steps=6,
        log_every=2,
        loss_weighting_every=2,
        num_interior=16,
        num_boundary=16,
        eval_resolution=11,
        seeds=(1, 2),
        progress=False,
    )
