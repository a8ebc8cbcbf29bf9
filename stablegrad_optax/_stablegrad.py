"""StableGrad: per-layer gradient standardisation to a reference scale."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from stablegrad_optax import _layers, _output_layer, _statistic
from stablegrad_optax._checks import validate_number as _validate_number

REFERENCES = (
    "output",
    "prediction",
    "mean",
    "geometric_mean",
    "median",
    "max",
    "given",
)
# References computed from the layer statistics need at least one weighted layer.
_WEIGHT_BASED = ("output", "mean", "geometric_mean", "median", "max")
# References passed to `update` as `reference_scale=` at every step.
PASSED = ("prediction", "given")
_TINY = float(jnp.finfo(jnp.float32).tiny)
_LARGEST = float(jnp.finfo(jnp.float32).max)


def _validate_reference(reference: Any) -> None:
    if isinstance(reference, str):
        if reference not in REFERENCES:
            raise ValueError(
                f"reference must be one of {REFERENCES}, a positive float or a "
                f"callable on the per-layer statistics, got {reference!r}."
            )
    elif not callable(reference):
        _validate_number(
            "reference",
            reference,
            lambda x: _TINY <= x <= _LARGEST,
            f"one of {REFERENCES}, a positive float normal in float32 "
            f"([{_TINY:.3g}, {_LARGEST:.3g}]) or a callable",
        )


class StableGradState(NamedTuple):
    """State of `stablegrad`: step count and what the last step did, per layer."""

    count: jax.typing.ArrayLike  # shape=(), dtype=int32
    reference_index: jax.typing.ArrayLike  # shape=(), dtype=int32; -1 if unused
    stats: jax.typing.ArrayLike  # shape=(num_layers,), dtype=float32
    factors: jax.typing.ArrayLike  # shape=(num_layers,), dtype=float32
    reference: jax.typing.ArrayLike  # shape=(), dtype=float32
    stale_reference: jax.typing.ArrayLike  # shape=(), dtype=bool
    ema: jax.typing.ArrayLike | None  # shape=(num_layers,), dtype=float32


def _aggregate(stats: jax.Array, valid: jax.Array, mode: str) -> jax.Array:
    """Mean, geometric mean, median or max of the valid statistics (NaN if none)."""
    count = jnp.sum(valid)
    if mode == "mean":
        return jnp.sum(jnp.where(valid, stats, 0.0)) / count
    if mode == "geometric_mean":
        logs = jnp.log(jnp.where(valid, stats, 1.0))
        return jnp.exp(jnp.sum(jnp.where(valid, logs, 0.0)) / count)
    if mode == "median":
        return jnp.nanmedian(jnp.where(valid, stats, jnp.nan))
    if mode == "max":
        return jnp.max(jnp.where(valid, stats, -jnp.inf))
    raise ValueError(f"unknown aggregate {mode!r}")


def _is_stand_in(tree: Any) -> bool:
    """A tree with no array or number among its leaves (perhaps no leaves).

    `optax.tree_map_params` (the usual way to derive the optimizer state's
    shardings from the parameters') calls `init` on such a stand-in to find the
    parameter-shaped parts of the state; it gets a state with no layers, of the
    same structure as a real one.
    """
    return not any(
        hasattr(x, "dtype") or isinstance(x, (bool, int, float, complex))
        for x in jax.tree.leaves(tree)
    )


def _rescale(leaf: jax.Array, inverse: jax.Array, target: jax.Array) -> jax.Array:
    """`leaf / stat * reference` in float32; finite entries saturate at dtype max."""
    acc = jnp.promote_types(leaf.dtype, jnp.float32)
    x = leaf.astype(acc)
    y = (x * inverse.astype(acc)) * target.astype(acc)
    largest = float(jnp.finfo(leaf.dtype).max)
    y = jnp.where(jnp.isfinite(x), jnp.clip(y, -largest, largest), y)
    return y.astype(leaf.dtype)


def stablegrad(
    reference: str | float | Callable[[jax.Array], jax.Array] = "output",
    *,
    statistic: str = "std",
    output_layer: _output_layer.OutputLayer = None,
    group_by: _layers.GroupBy = "parent",
    mask: Any = None,
    eps: jax.typing.ArrayLike = 0.0,
    max_scale: jax.typing.ArrayLike | None = None,
    ema_decay: jax.typing.ArrayLike | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""Rescales each layer's gradient to a common reference scale (StableGrad).

    After backpropagation and before the optimizer, the gradient :math:`g_l` of
    every layer :math:`l` is divided by its own statistic and multiplied by a
    reference scale:

    .. math::

      g_l \leftarrow g_l \, \frac{\sigma_\text{ref}}{\max(\sigma_l, \text{eps})},
      \qquad \sigma_l = \operatorname{std}(\{g_{l,w}\}_{w \in \text{weights}(l)}),

    where :math:`\sigma_l` is taken over all entries of the layer's weight leaves
    (ndim >= 2) and the factor multiplies every leaf of the layer, bias
    included. A layer is the parent key path of a leaf (a Flax ``Dense_3``
    holding ``kernel`` and ``bias``). Layers with no weight leaf pass through.

    The paper's reference :math:`\sigma_\text{ref}` is the standard deviation
    of the prediction gradient :math:`\partial L / \partial \hat y`
    (``reference="prediction"``). Only the loss computation knows it, so it is
    passed to ``update`` at every step as ``reference_scale=``;
    `prediction_value_and_grad` returns it from the same backward pass as the
    gradients. The default, ``reference="output"``, needs nothing from the
    caller: it is the statistic of the output layer's *weight* gradient, a
    different quantity.

    The forward model is untouched. Note that Adam is nearly invariant to a
    per-layer gradient scale that is constant in time: chained before Adam, this
    transform matters through the time variation of the factors and where
    Adam's ``eps`` dominates (vanishing layers). Before SGD it sets each layer's
    effective learning rate.

    Safety: a layer whose statistic is zero (or subnormal) or not finite is left
    unchanged; a non-finite gradient stays in its own layer (so
    ``optax.apply_if_finite`` sees it) and is left out of references that
    combine layers. If a computed reference is zero or not finite, no layer is
    rescaled that step and ``state.reference`` shows it. A passed
    ``reference_scale`` that is zero, negative or not finite is replaced by the
    last valid one (kept in ``state.reference``; before there is one, no layer
    is rescaled), and ``state.stale_reference`` is set.

    Args:
      reference: the target scale: ``"prediction"`` (the paper's: the
        ``reference_scale`` passed to ``update``, the std of dL/d(prediction)),
        ``"output"`` (the output layer's weight-gradient statistic),
        ``"mean"``, ``"geometric_mean"``, ``"median"`` or ``"max"`` of the layer
        statistics, ``"given"`` (any ``reference_scale`` passed to ``update``),
        a positive float, or a callable from the vector of layer statistics
        (NaN where a layer has no valid statistic) to a scalar. Only
        ``"prediction"`` and ``"given"`` accept ``reference_scale=``, and they
        require it.
      statistic: ``"std"`` (population standard deviation) or ``"rms"``.
      output_layer: for ``reference="output"``: the output layer's name (key
        path joined with "/"), a compiled ``re.Pattern`` that fullmatches one
        name, or a predicate on the layer's key path. None detects it at
        ``init`` (see `find_output_layer` for the forward-pass helper).
      group_by: ``"parent"``, ``"leaf"``, or a callable from a leaf's key path to
        its layer key (a string or a key path).
      mask: an optax-style mask (a pytree of bools, or a callable on the tree):
        only ``True`` leaves are measured and rescaled.
      eps: floor on each layer's statistic in the division; 0 gives exact
        standardisation. Zero statistics are never divided by, whatever eps.
      max_scale: if set (> 1), bounds each factor to [1/max_scale, max_scale].
      ema_decay: if set (in [0, 1)), the statistics are smoothed over steps
        with this decay before they set the factors and the reference.

    Returns:
      The corresponding `optax.GradientTransformationExtraArgs`. With
      ``reference="prediction"`` or ``"given"``, its ``update`` takes
      ``reference_scale=`` as an extra argument (through `optax.chain` too).

    Examples:
      >>> import jax, jax.numpy as jnp, optax
      >>> import stablegrad_optax as sgo
      >>> def f(p):
      ...   return jnp.sum(p["hidden"]["w"] ** 2) + jnp.sum(p["out"]["w"] ** 2)
      >>> params = {"hidden": {"w": jnp.array([[1.0, -2.0], [3.0, 0.5]])},
      ...           "out": {"w": jnp.array([[0.5], [-1.0]])}}
      >>> solver = optax.chain(sgo.stablegrad(output_layer="out"), optax.sgd(0.1))
      >>> opt_state = solver.init(params)
      >>> for _ in range(3):
      ...   grad = jax.grad(f)(params)
      ...   updates, opt_state = solver.update(grad, opt_state, params)
      ...   params = optax.apply_updates(params, updates)
      ...   print(f"{f(params):.4f}")
      12.7507
      10.7688
      9.3226

    References:
      Mestre et al., `StableGrad: Backward Scale Control without Batch
      Normalization <https://arxiv.org/abs/2605.19856>`_, 2026
    """
    _validate_reference(reference)
    _statistic.validate_statistic(statistic)
    _output_layer.validate_output_layer(output_layer)
    _layers.validate_group_by(group_by)
    if output_layer is not None and not (
        isinstance(reference, str) and reference == "output"
    ):
        raise ValueError(
            "output_layer only applies to reference='output', got "
            f"reference={reference!r}."
        )
    _validate_number(
        "eps", eps, lambda x: 0 <= x <= _LARGEST, "a number >= 0, finite in float32"
    )
    if max_scale is not None:
        _validate_number(
            "max_scale", max_scale, lambda x: x > 1, "None or a number > 1"
        )
    if ema_decay is not None:
        _validate_number(
            "ema_decay", ema_decay, lambda x: 0 <= x < 1, "None or a number in [0, 1)"
        )
    mode = reference if isinstance(reference, str) else None

    def layers_of(tree):
        return _layers.tree_layers(tree, group_by=group_by, mask=mask)

    def init_fn(params):
        _, _, layers = layers_of(params)
        if _is_stand_in(params):
            layers = []  # e.g. optax.tree_map_params: only the structure counts
        elif not layers and (mode in _WEIGHT_BASED or callable(reference)):
            raise ValueError(
                f"reference={reference!r} needs weight leaves (floating arrays with "
                "ndim >= 2) but the tree has none; use a float reference or "
                "reference='given', or shape the parameters as matrices."
            )
        index = -1
        if mode == "output" and layers:
            index = _output_layer.resolve_output_layer(
                layers, params, output_layer, group_by
            )
        num = len(layers)
        return StableGradState(
            count=jnp.zeros([], jnp.int32),
            reference_index=jnp.asarray(index, jnp.int32),
            stats=jnp.zeros([num], jnp.float32),
            factors=jnp.ones([num], jnp.float32),
            reference=jnp.zeros([], jnp.float32),
            stale_reference=jnp.zeros([], jnp.bool_),
            ema=None if ema_decay is None else jnp.zeros([num], jnp.float32),
        )

    def reference_of(stats, valid, state, reference_scale):
        """This step's reference and whether a passed one was unusable."""
        stale = jnp.zeros([], jnp.bool_)
        if mode in PASSED:
            given = jnp.asarray(reference_scale, jnp.float32).reshape(())
            stale = ~(jnp.isfinite(given) & (given >= _TINY))
            # The last valid passed reference (0 before there is one: factor 1).
            return jnp.where(stale, state.reference, given), stale
        if mode == "output":
            return stats[state.reference_index], stale
        if mode is not None:
            return _aggregate(stats, valid, mode), stale
        if callable(reference):
            given = reference(jnp.where(valid, stats, jnp.nan))
            return jnp.asarray(given, jnp.float32).reshape(()), stale
        return jnp.asarray(reference, jnp.float32), stale

    def check_reference_scale(reference_scale):
        if mode in PASSED and reference_scale is None:
            raise ValueError(
                f"stablegrad(reference={mode!r}) needs update(..., "
                "reference_scale=...) at every step: the std of dL/d(prediction), "
                "which stablegrad_optax.prediction_value_and_grad returns beside "
                "the loss and the gradients. A training loop that calls "
                "update(grads, state) without it (DeepXDE's, for one) cannot use "
                "this reference: use reference='output' there."
            )
        if mode not in PASSED and reference_scale is not None:
            raise ValueError(
                f"reference_scale was passed to update, but stablegrad(reference="
                f"{reference!r}) does not read it; use reference='prediction' or "
                "reference='given' to rescale to a passed scale."
            )

    def update_fn(updates, state, params=None, *, reference_scale=None, **extra_args):
        del params, extra_args
        check_reference_scale(reference_scale)
        leaves, treedef, layers = layers_of(updates)
        count = optax.safe_increment(state.count)
        if len(layers) != state.stats.shape[0]:
            raise ValueError(
                f"stablegrad: the updates have {len(layers)} weighted layers but the "
                f"state was initialised for {state.stats.shape[0]}; call init with a "
                "tree of the same structure (and the same mask and group_by)."
            )
        if not layers:
            return updates, state._replace(count=count)

        groups = [[leaves[i] for i in layer.weights] for layer in layers]
        stats = _statistic.group_statistics(groups, statistic)
        valid = jnp.isfinite(stats) & (stats >= _TINY)
        ema = state.ema
        if ema_decay is not None:
            decay = jnp.asarray(ema_decay, jnp.float32)
            blended = decay * ema + (1 - decay) * stats
            ema = jnp.where(valid, jnp.where(ema > 0, blended, stats), ema)
        used = stats if ema is None else ema

        ref, stale = reference_of(used, valid, state, reference_scale)
        use = valid & jnp.isfinite(ref) & (ref >= _TINY)
        denominator = jnp.maximum(jnp.where(use, used, 1.0), eps)
        inverse = jnp.where(use, 1.0 / denominator, 1.0)
        target = jnp.where(use, ref, 1.0)
        if max_scale is not None:
            low, high = denominator / max_scale, denominator * max_scale
            target = jnp.where(use, jnp.clip(ref, low, high), 1.0)

        out = list(leaves)
        factors = _statistic.split_rows(jnp.stack([inverse, target], 1))
        for layer, (inv, tgt) in zip(layers, factors, strict=True):
            for j in layer.leaves:
                out[j] = _rescale(leaves[j], inv, tgt)
        new_state = StableGradState(
            count=count,
            reference_index=state.reference_index,
            stats=stats,
            factors=inverse * target,
            reference=ref,
            stale_reference=stale,
            ema=ema,
        )
        return jax.tree.unflatten(treedef, out), new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
