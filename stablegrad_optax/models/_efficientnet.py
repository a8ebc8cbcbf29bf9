"""An EfficientNetV2-style network in Flax linen, with or without BatchNorm.

Fused-MBConv blocks (one full kxk convolution that expands, then a 1x1
projection) in the early stages and MBConv blocks (1x1 expansion, depthwise
kxk, squeeze-excitation, 1x1 projection) later, SiLU activations, as in Tan &
Le (2021). `EfficientNetV2S` has the stages of EfficientNetV2-S: with
`norm="batch"` and a 1000-class head it has torchvision's 21,458,488
parameters. Stochastic depth and dropout are left out (a stress test of the
optimizer, not an accuracy recipe). `norm="none"` removes every BatchNorm and
gives the convolutions biases; `norm="skipinit"` also multiplies each residual
branch by a learnable scalar initialised at 0 (or 1/sqrt(number of residual
blocks)).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from stablegrad_optax.models import _norm


class Stage(NamedTuple):
    """One stage: `layers` blocks of one kind, the first with `stride`."""

    fused: bool
    expand_ratio: int
    kernel: int
    stride: int
    channels: int
    layers: int
    se_ratio: float  # 0 for none; squeeze width = block input channels * se_ratio


EFFICIENTNET_V2_S = (
    Stage(True, 1, 3, 1, 24, 2, 0.0),
    Stage(True, 4, 3, 2, 48, 4, 0.0),
    Stage(True, 4, 3, 2, 64, 4, 0.0),
    Stage(False, 4, 3, 2, 128, 6, 0.25),
    Stage(False, 6, 3, 1, 160, 9, 0.25),
    Stage(False, 6, 3, 2, 256, 15, 0.25),
)
EFFICIENTNET_V2_TINY = (
    Stage(True, 1, 3, 1, 8, 1, 0.0),
    Stage(True, 4, 3, 2, 16, 2, 0.0),
    Stage(False, 4, 3, 2, 32, 2, 0.25),
)


class MBConvBlock(nn.Module):
    """A (Fused-)MBConv block; residual when the stride is 1 and widths match."""

    stage: Stage
    in_channels: int
    strides: int
    conv: Callable[..., nn.Module]
    norm: Callable[..., nn.Module] | None
    gain: float | None
    act: Callable[[jax.Array], jax.Array]

    def _conv(self, x, features, kernel, strides, name, act, groups=1):
        x = self.conv(
            features,
            (kernel, kernel),
            (strides, strides),
            feature_group_count=groups,
            name=name,
        )(x)
        x = _norm.normalised(self.norm, x, f"{name}_norm")
        return self.act(x) if act else x

    @nn.compact
    def __call__(self, x):
        stage, s = self.stage, self.strides
        expanded = self.in_channels * stage.expand_ratio
        y = x
        if stage.fused:
            if stage.expand_ratio == 1:
                y = self._conv(y, stage.channels, stage.kernel, s, "fused", True)
            else:
                y = self._conv(y, expanded, stage.kernel, s, "fused", True)
                y = self._conv(y, stage.channels, 1, 1, "project", False)
        else:
            if stage.expand_ratio != 1:
                y = self._conv(y, expanded, 1, 1, "expand", True)
            y = self._conv(y, expanded, stage.kernel, s, "depthwise", True, expanded)
            if stage.se_ratio > 0:
                squeeze = max(1, int(self.in_channels * stage.se_ratio))
                z = jnp.mean(y, axis=(1, 2), keepdims=True)
                se_conv = functools.partial(nn.Conv, kernel_size=(1, 1), dtype=y.dtype)
                z = self.act(se_conv(squeeze, name="se_reduce")(z))
                z = se_conv(expanded, name="se_expand")(z)
                y = y * nn.sigmoid(z)
            y = self._conv(y, stage.channels, 1, 1, "project", False)
        if s != 1 or self.in_channels != stage.channels:
            return y
        if self.gain is not None:
            y = _norm.BranchGain(self.gain, name="skip_gain")(y)
        return x + y


class EfficientNetV2(nn.Module):
    """An EfficientNetV2-style network whose normalisation is a switch.

    Attributes:
      stages: the block stages (`EFFICIENTNET_V2_S`, `EFFICIENTNET_V2_TINY`).
      stem_channels: channels of the stride-2 3x3 stem convolution.
      head_channels: channels of the final 1x1 convolution before pooling.
      num_classes: size of the `head` output.
      norm: "batch", "none" or "skipinit" (see the module docstring).
      skipinit_init: "zero" or "inverse_sqrt_depth".
      dtype: computation dtype.
      act: activation (SiLU).
      kernel_init: convolution kernel initialiser (He normal, fan-out).
    """

    stages: Sequence[Stage] = EFFICIENTNET_V2_S
    stem_channels: int = 24
    head_channels: int = 1280
    num_classes: int = 1000
    norm: str = "batch"
    skipinit_init: str = "zero"
    dtype: Any = jnp.float32
    act: Callable[[jax.Array], jax.Array] = nn.silu
    kernel_init: Callable = nn.initializers.variance_scaling(2.0, "fan_out", "normal")

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
        residual_blocks = sum(
            st.layers - (st.stride != 1 or prev != st.channels)
            for st, prev in zip(
                self.stages,
                [self.stem_channels] + [st.channels for st in self.stages[:-1]],
                strict=True,
            )
        )
        # torchvision's EfficientNetV2 BatchNorm: eps 1e-3, momentum 0.01.
        conv, norm, gain = _norm.conv_norm_gain(
            self,
            train,
            momentum=0.99,
            epsilon=1e-3,
            residual_blocks=max(residual_blocks, 1),
        )

        x = conv(self.stem_channels, (3, 3), (2, 2), name="stem")(x)
        x = _norm.normalised(norm, x, "stem_norm")
        x = self.act(x)
        channels = self.stem_channels
        for i, stage in enumerate(self.stages):
            for j in range(stage.layers):
                x = MBConvBlock(
                    stage=stage,
                    in_channels=channels,
                    strides=stage.stride if j == 0 else 1,
                    conv=conv,
                    norm=norm,
                    gain=gain,
                    act=self.act,
                    name=f"stage{i + 1}_block{j}",
                )(x)
                channels = stage.channels
        x = conv(self.head_channels, (1, 1), name="head_conv")(x)
        x = _norm.normalised(norm, x, "head_conv_norm")
        x = jnp.mean(self.act(x), axis=(1, 2))
        return nn.Dense(self.num_classes, dtype=self.dtype, name="head")(x)


EfficientNetV2S = functools.partial(EfficientNetV2, stages=EFFICIENTNET_V2_S)
EfficientNetV2Tiny = functools.partial(
    EfficientNetV2,
    stages=EFFICIENTNET_V2_TINY,
    stem_channels=8,
    head_channels=64,
)
EfficientNetV2S.__doc__ = """EfficientNetV2-S: `EfficientNetV2` with its stages.

21,458,488 parameters with BatchNorm and 1000 classes.
"""
EfficientNetV2Tiny.__doc__ = """A tiny EfficientNetV2-style net.

Fused-MBConv and MBConv + squeeze-excitation stages, five blocks; for tests
and CPU benchmarks (stages: `EFFICIENTNET_V2_TINY`).
"""
