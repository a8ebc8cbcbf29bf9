"""The normalisation switch shared by the conv nets: batch | none | skipinit."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import flax.linen as nn
import jax
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


def normalised(
    norm: Callable[..., nn.Module] | None, x: jax.Array, name: str
) -> jax.Array:
    """``x`` through a BatchNorm named ``name``, or ``x`` itself without BN.

    ``norm`` is the BatchNorm constructor of `conv_norm_gain` (None without BN).
    """
    return x if norm is None else norm(name=name)(x)


def conv_norm_gain(
    net: nn.Module,
    train: bool,
    *,
    momentum: float,
    epsilon: float,
    residual_blocks: int,
) -> tuple[Callable[..., nn.Module], Callable[..., nn.Module] | None, float | None]:
    """A conv net's convolution and BatchNorm constructors and its SkipInit gain.

    ``net`` is a conv net with the fields ``norm``, ``skipinit_init``, ``dtype``
    and ``kernel_init``; they are checked first. Without BatchNorm the BatchNorm
    constructor is None and the convolutions carry a bias, the shift BN
    provided. The gain is the initial value of each residual branch's
    `BranchGain` with ``norm="skipinit"`` (0, or 1/sqrt(residual_blocks)), and
    None otherwise.
    """
    validate(net.norm, net.skipinit_init)
    conv = functools.partial(
        nn.Conv,
        use_bias=net.norm != "batch",
        dtype=net.dtype,
        kernel_init=net.kernel_init,
    )
    gain = None
    if net.norm == "skipinit":
        zero = net.skipinit_init == "zero"
        gain = 0.0 if zero else 1.0 / math.sqrt(residual_blocks)
    if net.norm != "batch":
        return conv, None, gain
    batch_norm = functools.partial(
        nn.BatchNorm,
        use_running_average=not train,
        momentum=momentum,
        epsilon=epsilon,
        dtype=net.dtype,
    )
    return conv, batch_norm, gain
