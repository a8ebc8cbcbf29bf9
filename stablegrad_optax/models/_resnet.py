"""ResNet-18/34/50 in Flax linen, with BatchNorm, without it, or with SkipInit.

`norm="batch"` is the standard architecture (torchvision's parameter counts:
ResNet-18 11,689,512, ResNet-50 25,557,032 with a 1000-class head).
`norm="none"` removes every normalisation layer and gives each convolution a
bias instead (the shift BatchNorm provided). `norm="skipinit"` does the same
and multiplies each residual branch by a learnable scalar (De & Smith, 2020),
initialised at 0 (the block then computes exactly its shortcut path) or at
1/sqrt(number of blocks).

Convolutions use He initialisation (normal, fan-out, as torchvision). The
output layer is named `head`, so `stablegrad` finds it by name.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from stablegrad_optax.models import _norm

STEMS = ("imagenet", "cifar")
he_normal = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


class _Block(nn.Module):
    """Shared plumbing: conv + optional norm + activation, shortcut, gain."""

    filters: int
    strides: int
    conv: Callable[..., nn.Module]
    norm: Callable[..., nn.Module] | None
    gain: float | None
    act: Callable[[jax.Array], jax.Array]

    def _apply(self, x, layers):
        """Conv, norm, act per (filters, kernel, strides); no act after the last."""
        y = x
        for i, (filters, kernel, strides) in enumerate(layers):
            y = self.conv(
                filters, (kernel, kernel), (strides, strides), name=f"conv_{i}"
            )(y)
            y = _norm.normalised(self.norm, y, f"norm_{i}")
            if i < len(layers) - 1:
                y = self.act(y)
        if self.gain is not None:
            y = _norm.BranchGain(self.gain, name="skip_gain")(y)
        shortcut = x
        if shortcut.shape != y.shape:
            shortcut = self.conv(
                y.shape[-1], (1, 1), (self.strides, self.strides), name="conv_proj"
            )(shortcut)
            shortcut = _norm.normalised(self.norm, shortcut, "norm_proj")
        return self.act(shortcut + y)


class ResNetBlock(_Block):
    """Basic block: two 3x3 convolutions (ResNet-18/34)."""

    expansion = 1

    @nn.compact
    def __call__(self, x):
        f, s = self.filters, self.strides
        return self._apply(x, [(f, 3, s), (f, 3, 1)])


class BottleneckResNetBlock(_Block):
    """Bottleneck block: 1x1, 3x3 (strided, as ResNet v1.5), 1x1 to 4x filters."""

    expansion = 4

    @nn.compact
    def __call__(self, x):
        f, s = self.filters, self.strides
        return self._apply(x, [(f, 1, 1), (f, 3, s), (4 * f, 1, 1)])


class ResNet(nn.Module):
    """A ResNet v1.5 whose normalisation is a switch.

    Attributes:
      stage_sizes: blocks per stage (ResNet-18: 2, 2, 2, 2).
      block_cls: `ResNetBlock` or `BottleneckResNetBlock`.
      num_classes: size of the `head` output.
      width: filters of the first stage (64 in the standard nets); a smaller
        width makes a CPU-sized net of the same depth.
      norm: "batch", "none" (no normalisation, biased convolutions) or
        "skipinit" ("none" plus a learnable gain on each residual branch).
      skipinit_init: "zero" or "inverse_sqrt_depth" (1/sqrt(number of blocks)).
      stem: "imagenet" (7x7 stride-2 convolution and 3x3 max-pool) or "cifar"
        (3x3 stride-1 convolution, no pooling).
      dtype: computation dtype.
      act: activation.
      kernel_init: convolution kernel initialiser.

    Call with `train=True` to use (and update) batch statistics; pass
    `mutable=["batch_stats"]` to `apply` then, as usual in Flax.
    """

    stage_sizes: Sequence[int]
    block_cls: type[_Block]
    num_classes: int = 1000
    width: int = 64
    norm: str = "batch"
    skipinit_init: str = "zero"
    stem: str = "imagenet"
    dtype: Any = jnp.float32
    act: Callable[[jax.Array], jax.Array] = nn.relu
    kernel_init: Callable = he_normal

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
        conv, norm, gain = _norm.conv_norm_gain(
            self,
            train,
            momentum=0.9,
            epsilon=1e-5,
            residual_blocks=sum(self.stage_sizes),
        )
        if self.stem not in STEMS:
            raise ValueError(f"stem must be one of {STEMS}, got {self.stem!r}.")
        if self.width < 1 or self.num_classes < 1 or not self.stage_sizes:
            raise ValueError(
                "width and num_classes must be >= 1 and stage_sizes non-empty, got "
                f"width={self.width}, num_classes={self.num_classes}, "
                f"stage_sizes={self.stage_sizes}."
            )

        if self.stem == "imagenet":
            x = conv(self.width, (7, 7), (2, 2), padding=[(3, 3), (3, 3)], name="stem")(
                x
            )
        else:
            x = conv(self.width, (3, 3), name="stem")(x)
        x = _norm.normalised(norm, x, "stem_norm")
        x = self.act(x)
        if self.stem == "imagenet":
            x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))

        for i, num_blocks in enumerate(self.stage_sizes):
            for j in range(num_blocks):
                x = self.block_cls(
                    filters=self.width * 2**i,
                    strides=2 if i > 0 and j == 0 else 1,
                    conv=conv,
                    norm=norm,
                    gain=gain,
                    act=self.act,
                    name=f"stage{i + 1}_block{j}",
                )(x)
        x = jnp.mean(x, axis=(1, 2))
        return nn.Dense(self.num_classes, dtype=self.dtype, name="head")(x)


ResNet18 = functools.partial(ResNet, stage_sizes=(2, 2, 2, 2), block_cls=ResNetBlock)
ResNet34 = functools.partial(ResNet, stage_sizes=(3, 4, 6, 3), block_cls=ResNetBlock)
ResNet50 = functools.partial(
    ResNet, stage_sizes=(3, 4, 6, 3), block_cls=BottleneckResNetBlock
)
ResNet18.__doc__ = """ResNet-18: `ResNet` with basic blocks in stages (2, 2, 2, 2).

11,689,512 parameters with BatchNorm, the ImageNet stem and 1000 classes.
"""
ResNet34.__doc__ = """ResNet-34: `ResNet` with basic blocks in stages (3, 4, 6, 3).

21,797,672 parameters with BatchNorm, the ImageNet stem and 1000 classes.
"""
ResNet50.__doc__ = """ResNet-50 (v1.5): bottleneck blocks in stages (3, 4, 6, 3).

25,557,032 parameters with BatchNorm, the ImageNet stem and 1000 classes.
"""
