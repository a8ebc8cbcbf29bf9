"""A tiny run for tests and smoke checks: seconds on 8 virtual CPU devices."""

from __future__ import annotations

import dataclasses

from configs import default


def get_config() -> default.Config:
    return dataclasses.replace(
        default.get_config(),
        depth=3,
        width=16,
        steps=6,
        log_every=3,
        num_interior=64,
        num_boundary=64,
        eval_resolution=11,
    )
