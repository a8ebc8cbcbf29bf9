"""`stablegrad` chained with common optimizers (thin `optax.chain` aliases).

Every alias takes `stablegrad`'s options as keyword-only arguments, declared,
documented and passed on in one place each: `stablegrad`'s own signature gives
their names, defaults and types (``mask`` and ``eps``, which clash with the
base optimizers', become ``stablegrad_mask`` and ``stablegrad_eps``);
``_OPTIONS_DOC`` documents them; `_stablegrad_from` builds the transform. The
aliases' signatures, as `inspect.signature` and `optax.inject_hyperparams` see
them, list every keyword.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

import jax
import optax

from stablegrad_optax._stablegrad import stablegrad

ScalarOrSchedule = float | jax.Array | optax.Schedule
_Alias = TypeVar("_Alias", bound=Callable[..., optax.GradientTransformationExtraArgs])

# `stablegrad`'s options that clash with a base optimizer's (adamw's mask, adam's eps).
_PREFIXED = {"mask": "stablegrad_mask", "eps": "stablegrad_eps"}
_UNPREFIXED = {prefixed: name for name, prefixed in _PREFIXED.items()}
_OPTIONS = tuple(
    option.replace(
        name=_PREFIXED.get(option.name, option.name),
        kind=inspect.Parameter.KEYWORD_ONLY,
    )
    for option in inspect.signature(stablegrad).parameters.values()
)
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


def _takes_stablegrad_options(alias: _Alias) -> _Alias:
    """Adds `stablegrad`'s options to ``alias``'s signature and ``Args:``.

    ``alias`` collects them in ``**stablegrad_options``; its signature, as
    `inspect.signature` (and so `optax.inject_hyperparams`, `help` and Sphinx)
    sees it, lists them one by one as keyword-only arguments, and its docstring's
    ``Args:`` section ends with ``_OPTIONS_DOC``.
    """
    signature = inspect.signature(alias)
    own = [p for p in signature.parameters.values() if p.kind != p.VAR_KEYWORD]
    alias.__signature__ = signature.replace(parameters=[*own, *_OPTIONS])
    head, returns = alias.__doc__.split("\n\n    Returns:")
    alias.__doc__ = f"{head}{_OPTIONS_DOC}\n\n    Returns:{returns}"
    return alias


def _stablegrad_from(
    options: dict[str, Any],
) -> optax.GradientTransformationExtraArgs:
    """`stablegrad` with the options an alias was given (unprefixed)."""
    unknown = options.keys() - {option.name for option in _OPTIONS}
    if unknown:
        raise TypeError(
            f"unexpected keyword argument(s) {sorted(unknown)}; the StableGrad "
            f"options are {[option.name for option in _OPTIONS]}."
        )
    return stablegrad(**{_UNPREFIXED.get(k, k): v for k, v in options.items()})


@_takes_stablegrad_options
def stablegrad_adam(
    learning_rate: ScalarOrSchedule,
    b1: jax.typing.ArrayLike = 0.9,
    b2: jax.typing.ArrayLike = 0.999,
    eps: jax.typing.ArrayLike = 1e-8,
    eps_root: jax.typing.ArrayLike = 0.0,
    **stablegrad_options: Any,
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
        _stablegrad_from(stablegrad_options),
        optax.adam(
            learning_rate=learning_rate, b1=b1, b2=b2, eps=eps, eps_root=eps_root
        ),
    )


@_takes_stablegrad_options
def stablegrad_adamw(
    learning_rate: ScalarOrSchedule,
    b1: jax.typing.ArrayLike = 0.9,
    b2: jax.typing.ArrayLike = 0.999,
    eps: jax.typing.ArrayLike = 1e-8,
    eps_root: jax.typing.ArrayLike = 0.0,
    weight_decay: jax.typing.ArrayLike = 1e-4,
    mask: Any = None,
    **stablegrad_options: Any,
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
        _stablegrad_from(stablegrad_options),
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


@_takes_stablegrad_options
def stablegrad_sgd(
    learning_rate: ScalarOrSchedule,
    momentum: jax.typing.ArrayLike | None = None,
    nesterov: bool = False,
    **stablegrad_options: Any,
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
        _stablegrad_from(stablegrad_options),
        optax.sgd(learning_rate=learning_rate, momentum=momentum, nesterov=nesterov),
    )
