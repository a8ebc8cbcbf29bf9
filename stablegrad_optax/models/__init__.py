"""Flax models: a deep MLP for PINNs and BatchNorm-free conv nets.

`ResNet18`/`ResNet34`/`ResNet50` and `EfficientNetV2S`/`EfficientNetV2Tiny`
take `norm="batch" | "none" | "skipinit"`; every model names its output layer
`head`.

Examples:
  >>> import jax, jax.numpy as jnp
  >>> from stablegrad_optax.models import MLP, ResNet18
  >>> model = MLP(depth=3, width=8, input_bounds=((0.0, 0.0), (1.0, 1.0)))
  >>> params = model.init(jax.random.key(0), jnp.ones((4, 2)))["params"]
  >>> sorted(params)
  ['head', 'hidden_0', 'hidden_1', 'hidden_2']
  >>> net = ResNet18(num_classes=10, width=8, norm="skipinit", stem="cifar")
  >>> variables = net.init(jax.random.key(0), jnp.ones((2, 32, 32, 3)))
  >>> net.apply(variables, jnp.ones((2, 32, 32, 3))).shape
  (2, 10)
"""

from stablegrad_optax.models._efficientnet import (
    EFFICIENTNET_V2_S as EFFICIENTNET_V2_S,
)
from stablegrad_optax.models._efficientnet import (
    EFFICIENTNET_V2_TINY as EFFICIENTNET_V2_TINY,
)
from stablegrad_optax.models._efficientnet import EfficientNetV2 as EfficientNetV2
from stablegrad_optax.models._efficientnet import EfficientNetV2S as EfficientNetV2S
from stablegrad_optax.models._efficientnet import (
    EfficientNetV2Tiny as EfficientNetV2Tiny,
)
from stablegrad_optax.models._efficientnet import MBConvBlock as MBConvBlock
from stablegrad_optax.models._efficientnet import Stage as Stage
from stablegrad_optax.models._mlp import ACTIVATIONS as ACTIVATIONS
from stablegrad_optax.models._mlp import MLP as MLP
from stablegrad_optax.models._norm import NORMS as NORMS
from stablegrad_optax.models._norm import BranchGain as BranchGain
from stablegrad_optax.models._resnet import (
    BottleneckResNetBlock as BottleneckResNetBlock,
)
from stablegrad_optax.models._resnet import ResNet as ResNet
from stablegrad_optax.models._resnet import ResNet18 as ResNet18
from stablegrad_optax.models._resnet import ResNet34 as ResNet34
from stablegrad_optax.models._resnet import ResNet50 as ResNet50
from stablegrad_optax.models._resnet import ResNetBlock as ResNetBlock

__all__ = (
    "ACTIVATIONS",
    "EFFICIENTNET_V2_S",
    "EFFICIENTNET_V2_TINY",
    "MLP",
    "NORMS",
    "BottleneckResNetBlock",
    "BranchGain",
    "EfficientNetV2",
    "EfficientNetV2S",
    "EfficientNetV2Tiny",
    "MBConvBlock",
    "ResNet",
    "ResNet18",
    "ResNet34",
    "ResNet50",
    "ResNetBlock",
    "Stage",
)
