"""StableGrad for JAX/Optax: per-layer backward scale control without BatchNorm."""

from stablegrad_optax._adamp import AdamDirectionState as AdamDirectionState
from stablegrad_optax._adamp import adamp as adamp
from stablegrad_optax._adamp import (
    scale_by_adamp_direction as scale_by_adamp_direction,
)
from stablegrad_optax._adamp import scale_by_sgdp_direction as scale_by_sgdp_direction
from stablegrad_optax._adamp import sgdp as sgdp
from stablegrad_optax._aliases import stablegrad_adam as stablegrad_adam
from stablegrad_optax._aliases import stablegrad_adamw as stablegrad_adamw
from stablegrad_optax._aliases import stablegrad_sgd as stablegrad_sgd
from stablegrad_optax._diagnostics import Imbalance as Imbalance
from stablegrad_optax._diagnostics import imbalance as imbalance
from stablegrad_optax._diagnostics import layer_names as layer_names
from stablegrad_optax._diagnostics import layer_statistics as layer_statistics
from stablegrad_optax._output_layer import find_output_layer as find_output_layer
from stablegrad_optax._prediction import (
    prediction_value_and_grad as prediction_value_and_grad,
)
from stablegrad_optax._projection import ProjectionState as ProjectionState
from stablegrad_optax._projection import scale_by_projection as scale_by_projection
from stablegrad_optax._stablegrad import StableGradState as StableGradState
from stablegrad_optax._stablegrad import stablegrad as stablegrad

__version__ = "0.2.0"

__all__ = (
    "AdamDirectionState",
    "Imbalance",
    "ProjectionState",
    "StableGradState",
    "adamp",
    "find_output_layer",
    "imbalance",
    "layer_names",
    "layer_statistics",
    "prediction_value_and_grad",
    "scale_by_adamp_direction",
    "scale_by_projection",
    "scale_by_sgdp_direction",
    "sgdp",
    "stablegrad",
    "stablegrad_adam",
    "stablegrad_adamw",
    "stablegrad_sgd",
)
