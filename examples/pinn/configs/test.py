"""A tiny run for tests and smoke checks: seconds on a CPU, every optimizer."""

from __future__ import annotations

import dataclasses

from configs import default


def get_config() -> default.Config:
    return dataclasses.replace(
        default.get_config(),
        optimizers=default.OPTIMIZERS,
        depth=2,
        width=8,
        steps=4,
        log_every=2,
        num_interior=16,
        num_boundary=16,
        eval_resolution=11,
        progress=False,
    )
