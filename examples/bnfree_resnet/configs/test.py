"""A tiny run for tests and smoke checks: seconds on a CPU."""

from __future__ import annotations

import dataclasses

from configs import default


def get_config() -> default.Config:
    return dataclasses.replace(
        default.get_config(),
        width=2,
        dataset="synthetic",
        variants=("bn", "none+stablegrad(prediction)"),
        batch_size=4,
        steps=4,
        log_every=2,
        progress=False,
    )
