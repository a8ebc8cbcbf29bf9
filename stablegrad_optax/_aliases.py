"""`stablegrad` chained with common optimizers (thin `optax.chain` aliases).

Every alias writes out `stablegrad`'s options as keyword-only arguments (so
`optax.inject_hyperparams`, type checkers and editors see them), documents them
in one place (``_OPTIONS_DOC``, appended to each alias's ``Args:``) and passes
them on in one place (`_stablegrad_from`). ``mask`` and ``eps``, which clash
with the base optimizers', are ``stablegrad_mask`` and ``stablegrad_eps``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import jax
import optax

from stablegrad_optax import _output_layer
from stablegrad_optax._stablegrad import stablegrad

ScalarOrSchedule = float | jax.Array | optax.Schedule
_Alias = TypeVar("_Alias", bound=Callable[..., optax.GradientTransformationExtraArgs])

# The aliases' names for `stablegrad`'s options: the two that clash with a base
# optimizer's (adamw's mask, adam's eps) are prefixed.
_OPTIONS = {
    "reference": "reference",
    "statistic": "statistic",
    "output_layer": "output_layer",
    "group_by": "group_by",
    "stablegrad_mask": "mask",
    "stablegrad_eps": "eps",
    "max_scale": "max_scale",
    "ema_decay": "ema_decay",
}
_OPTIONS_DOC = """
      reference: StableGrad's target scale (default ``"output"``);
        ``"prediction"`` and ``"given"`` take ``reference_scale=`` at every
        ``update``. See `stablegrad`.
      statistic: the per-layer statistic, ``"std"`` or ``"rms"``.
      output_layer: the output layer, for ``reference="output"``; None detects
        it at ``init``. See `stablegrad`.
      group_by: how leaves are grouped into layers: ``"parent"``, ``"leaf"`` or
        a callable on a leaf's key path.
      stablegrad_mask: `stablegrad`'s ``mask``: which leaves are rescaled.
      stablegrad_eps: `stablegrad`'s ``eps``: floor on a layer's statistic.
      max_scale: if set (> 1), bounds each layer's factor to
        [1/max_scale, max_scale].
      ema_decay: if set (in [0, 1)), the decay with which the statistics are
        smoothed over steps."""


def _documents_stablegrad_options(alias: _Alias) -> _Alias:
    """Ends ``alias``'s ``Args:`` with the StableGrad options' documentation."""
    head, returns = alias.__doc__.split("\n\n    Returns:")
    alias.__doc__ = f"{head}{_OPTIONS_DOC}\n\n    Returns:{returns}"
    return alias


def _stablegrad_from(
    arguments: dict[str, Any],
) -> optax.GradientTransformationExtraArgs:
    """`stablegrad` with the StableGrad options among an alias's ``locals()``."""
    return stablegrad(**{name: arguments[alias] for alias, name in _OPTIONS.items()})


@_documents_stablegrad_options
def stablegrad_adam(
    learning_rate: ScalarOrSchedule,
    b1: jax.typing.ArrayLike = 0.9,
    b2: jax.typing.ArrayLike = 0.999,
    eps: jax.typing.ArrayLike = 1e-8,
    eps_root: jax.typing.ArrayLike = 0.0,
    *,
    reference: str | float | Callable = "output",
    statistic: str = "std",
    output_layer: _output_layer.OutputLayer = None,
    group_by: str | Callable = "parent",
    stablegrad_mask: Any = None,
    stablegrad_eps: jax.typing.ArrayLike = 0.0,
    max_scale: jax.typing.ArrayLike | None = None,
    ema_decay: jax.typing.ArrayLike | None = None,
) -> optax.GradientTransformationExtraArgs:
    """Adam on StableGrad-rescaled gradients: ``chain(stablegrad(...), adam(...))``.

    Args:
      learning_rate: Adam's learning rate (a float or a schedule).
      b1: Adam's decay rate of the first moment.
      b2: Adam's decay rate of the second moment.
      eps: Adam's epsilon, added to the root of the second moment.
      eps_root: Adam's epsilon inside the root.

    Returns:
      The chained `optax.GradientTransformationExtraArgs`.

    Examples:
      >>> import jax.numpy as jnp, optax, stablegrad_optax as sgo
      >>> tx = optax.inject_hyperparams(sgo.stablegrad_adam)(learning_rate=1e-3)
      >>> state = tx.init({"Dense_0": {"kernel": jnp.ones((2, 2))}})
      >>> print(f"{state.hyperparams['learning_rate']:.0e}")
      1e-03
    """
    return optax.chain(
        _stablegrad_from(locals()),
        optax.adam(
            learning_rate=learning_rate, b1=b1, b2=b2, eps=eps, eps_root=eps_root
        ),
    )


@_documents_stablegrad_options
def stablegrad_adamw(
    learning_rate: ScalarOrSchedule,
    b1: jax.typing.ArrayLike = 0.9,
    b2: jax.typing.ArrayLike = 0.999,
    eps: jax.typing.ArrayLike = 1e-8,
    eps_root: jax.typing.ArrayLike = 0.0,
    weight_decay: jax.typing.ArrayLike = 1e-4,
    mask: Any = None,
    *,
    reference: str | float | Callable = "output",
    statistic: str = "std",
    output_layer: _output_layer.OutputLayer = None,
    group_by: str | Callable = "parent",
    stablegrad_mask: Any = None,
    stablegrad_eps: jax.typing.ArrayLike = 0.0,
    max_scale: jax.typing.ArrayLike | None = None,
    ema_decay: jax.typing.ArrayLike | None = None,
) -> optax.GradientTransformationExtraArgs:
    """AdamW on StableGrad-rescaled gradients: ``chain(stablegrad(...), adamw(...))``.

    Weight decay is applied by AdamW to the parameters, after the rescale: it is
    not scaled by the layer factors.

    Args:
      learning_rate: AdamW's learning rate (a float or a schedule).
      b1: decay rate of the first moment.
      b2: decay rate of the second moment.
      eps: AdamW's epsilon, added to the root of the second moment.
      eps_root: AdamW's epsilon inside the root.
      weight_decay: decoupled weight decay rate.
      mask: AdamW's weight-decay mask (optax's ``mask``).

    Returns:
      The chained `optax.GradientTransformationExtraArgs`.

    Examples:
      >>> import jax.numpy as jnp, stablegrad_optax as sgo
      >>> tx = sgo.stablegrad_adamw(1e-3, weight_decay=1e-4)
      >>> state = tx.init({"Dense_0": {"kernel": jnp.ones((2, 2))}})
    """
    return optax.chain(
        _stablegrad_from(locals()),
        optax.adamw(
            learning_rate=learning_rate,
            b1=b1,
            b2=b2,
            eps=eps,
            eps_root=eps_root,
            weight_decay=weight_decay,
            mask=mask,
        ),
    )


@_documents_stablegrad_options
def stablegrad_sgd(
    learning_rate: ScalarOrSchedule,
    momentum: jax.typing.ArrayLike | None = None,
    nesterov: bool = False,
    *,
    reference: str | float | Callable = "output",
    statistic: str = "std",
    output_layer: _output_layer.OutputLayer = None,
    group_by: str | Callable = "parent",
    stablegrad_mask: Any = None,
    stablegrad_eps: jax.typing.ArrayLike = 0.0,
    max_scale: jax.typing.ArrayLike | None = None,
    ema_decay: jax.typing.ArrayLike | None = None,
) -> optax.GradientTransformationExtraArgs:
    """SGD (with optional momentum) on StableGrad-rescaled gradients.

    Under SGD the rescale sets each layer's effective learning rate; with a
    constant ``reference`` this is per-layer normalised SGD.

    Args:
      learning_rate: the learning rate (a float or a schedule).
      momentum: momentum decay rate, or None for plain SGD.
      nesterov: whether to use Nesterov momentum.

    Returns:
      The chained `optax.GradientTransformationExtraArgs`.

    Examples:
      >>> import jax.numpy as jnp, stablegrad_optax as sgo
      >>> tx = sgo.stablegrad_sgd(1e-2, momentum=0.9, reference=1.0)
      >>> state = tx.init({"Dense_0": {"kernel": jnp.ones((2, 2))}})
    """
    return optax.chain(
        _stablegrad_from(locals()),
        optax.sgd(learning_rate=learning_rate, momentum=momentum, nesterov=nesterov),
    )
