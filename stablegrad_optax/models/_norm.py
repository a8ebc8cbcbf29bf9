"""The normalisation switch shared by the conv nets: batch | none | skipinit."""

from __future__ import annotations

import functools
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


def conv_and_norm(
    norm: str,
    train: bool,
    dtype: Any,
    kernel_init: Callable,
    *,
    momentum: float,
    epsilon: float,
) -> tuple[Callable[..., nn.Module], Callable[..., nn.Module] | None]:
    """Constructors of the convolutions and of the BatchNorm (None without BN).

    Without BatchNorm the convolutions carry a bias, the shift BN provided.
    """
    conv = functools.partial(
        nn.Conv, use_bias=norm != "batch", dtype=dtype, kernel_init=kernel_init
    )
    if norm != "batch":
        return conv, None
    batch_norm = functools.partial(
        nn.BatchNorm,
        use_running_average=not train,
        momentum=momentum,
        epsilon=epsilon,
        dtype=dtype,
    )
    return conv, batch_norm
