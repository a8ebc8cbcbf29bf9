"""`stablegrad` chained with common optimizers (thin `optax.chain` aliases)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import optax

from stablegrad_optax import _output_layer
from stablegrad_optax._stablegrad import stablegrad

ScalarOrSchedule = float | jax.Array | optax.Schedule


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
      reference: see `stablegrad`.
      statistic: see `stablegrad`.
      output_layer: see `stablegrad`.
      group_by: see `stablegrad`.
      stablegrad_mask: `stablegrad`'s ``mask``: which leaves are rescaled.
      stablegrad_eps: `stablegrad`'s ``eps``: floor on a layer's statistic.
      max_scale: see `stablegrad`.
      ema_decay: see `stablegrad`.

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
        stablegrad(
            reference=reference,
            statistic=statistic,
            output_layer=output_layer,
            group_by=group_by,
            mask=stablegrad_mask,
            eps=stablegrad_eps,
            max_scale=max_scale,
            ema_decay=ema_decay,
        ),
        optax.adam(
            learning_rate=learning_rate, b1=b1, b2=b2, eps=eps, eps_root=eps_root
        ),
    )


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
      reference: see `stablegrad`.
      statistic: see `stablegrad`.
      output_layer: see `stablegrad`.
      group_by: see `stablegrad`.
      stablegrad_mask: `stablegrad`'s ``mask``: which leaves are rescaled.
      stablegrad_eps: `stablegrad`'s ``eps``: floor on a layer's statistic.
      max_scale: see `stablegrad`.
      ema_decay: see `stablegrad`.

    Returns:
      The chained `optax.GradientTransformationExtraArgs`.

    Examples:
      >>> import jax.numpy as jnp, stablegrad_optax as sgo
      >>> tx = sgo.stablegrad_adamw(1e-3, weight_decay=1e-4)
      >>> state = tx.init({"Dense_0": {"kernel": jnp.ones((2, 2))}})
    """
    return optax.chain(
        stablegrad(
            reference=reference,
            statistic=statistic,
            output_layer=output_layer,
            group_by=group_by,
            mask=stablegrad_mask,
            eps=stablegrad_eps,
            max_scale=max_scale,
            ema_decay=ema_decay,
        ),
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
      reference: see `stablegrad`.
      statistic: see `stablegrad`.
      output_layer: see `stablegrad`.
      group_by: see `stablegrad`.
      stablegrad_mask: `stablegrad`'s ``mask``: which leaves are rescaled.
      stablegrad_eps: `stablegrad`'s ``eps``: floor on a layer's statistic.
      max_scale: see `stablegrad`.
      ema_decay: see `stablegrad`.

    Returns:
      The chained `optax.GradientTransformationExtraArgs`.

    Examples:
      >>> import jax.numpy as jnp, stablegrad_optax as sgo
      >>> tx = sgo.stablegrad_sgd(1e-2, momentum=0.9, reference=1.0)
      >>> state = tx.init({"Dense_0": {"kernel": jnp.ones((2, 2))}})
    """
    return optax.chain(
        stablegrad(
            reference=reference,
            statistic=statistic,
            output_layer=output_layer,
            group_by=group_by,
            mask=stablegrad_mask,
            eps=stablegrad_eps,
            max_scale=max_scale,
            ema_decay=ema_decay,
        ),
        optax.sgd(learning_rate=learning_rate, momentum=momentum, nesterov=nesterov),
    )
