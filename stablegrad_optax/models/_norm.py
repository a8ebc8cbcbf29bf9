"""The normalisation switch shared by the conv nets: batch | none | skipinit."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

NORMS = ("batch", "none", "skipinit")
SKIPINIT_INITS = ("zero", "inverse_sqrt_depth")


def validate(norm: str, skipinit_init: str, allowed: tuple[str, ...] = NORMS) -> None:
    """Raises a `ValueError` naming the option when `norm` or its init is unknown."""
    if norm not in allowed:
        raise ValueError(f"norm must be one of {allowed}, got {norm!r}.")
    if skipinit_init not in SKIPINIT_INITS:
        raise ValueError(
            f"skipinit_init must be one of {SKIPINIT_INITS}, got {skipinit_init!r}."
        )


def branch_gain_value(skipinit_init: str, num_blocks: int) -> float:
    """Initial value of a SkipInit gain: 0, or 1/sqrt(number of residual blocks)."""
    return 0.0 if skipinit_init == "zero" else 1.0 / math.sqrt(num_blocks)


class BranchGain(nn.Module):
    """A learnable scalar that multiplies a residual branch (SkipInit).

    Attributes:
      value: its initial value (0 makes the block compute its shortcut path).
    """

    value: float = 0.0

    @nn.compact
    def __call__(self, x):
        gain = self.param("gain", nn.initializers.constant(self.value), (), jnp.float32)
        return x * gain.astype(x.dtype)


def norm_factory(
    norm: str, train: bool, dtype: Any, *, momentum: float, epsilon: float
) -> Callable[..., nn.Module] | None:
    """A `BatchNorm` constructor when `norm == "batch"`, else None."""
    if norm != "batch":
        return None
    return lambda **kwargs: nn.BatchNorm(
        use_running_average=not train,
        momentum=momentum,
        epsilon=epsilon,
        dtype=dtype,
        **kwargs,
    )
