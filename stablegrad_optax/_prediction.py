"""The loss, its gradients and the prediction-gradient scale in one backward pass."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from stablegrad_optax import _statistic

# Which parts of the prediction set the std: every leaf (None), a pytree of
# bools shaped like the prediction (or a prefix of it), or a callable from the
# prediction to such a pytree.
ReferenceOn = Any


def _check_prediction(prediction: Any) -> None:
    paths = jax.tree_util.tree_flatten_with_path(prediction)[0]
    if not paths:
        raise ValueError("predict returned no arrays; it must return the prediction.")
    for path, leaf in paths:
        dtype = jnp.result_type(leaf)
        if not jnp.issubdtype(dtype, jnp.floating):
            raise ValueError(
                "prediction_value_and_grad needs a real floating prediction (the "
                "gradient with respect to it sets the reference), but predict "
                f"returned {jax.tree_util.keystr(path) or 'an array'} of dtype "
                f"{dtype}."
            )


def selected(prediction: Any, cotangent: Any, reference_on: ReferenceOn) -> list:
    """The cotangent leaves whose prediction part `reference_on` selects."""
    if reference_on is None:
        return jax.tree.leaves(cotangent)
    mask = reference_on(prediction) if callable(reference_on) else reference_on
    for keep in jax.tree.leaves(mask):
        if not isinstance(keep, bool):
            raise ValueError(
                f"reference_on must hold Python bools, got {keep!r}; it selects "
                "whole parts of the prediction, not entries."
            )
    try:
        picked = jax.tree.map(
            lambda keep, part: part if keep else None, mask, cotangent
        )
    except ValueError as error:
        raise ValueError(
            "reference_on must be a pytree of bools with the structure of the "
            f"prediction (or a prefix of it), or a callable returning one: {error}"
        ) from None
    leaves = jax.tree.leaves(picked)
    if not leaves:
        raise ValueError(
            "reference_on selects no part of the prediction; at least one part "
            "must set the reference."
        )
    return leaves


def prediction_cotangent(
    predict: Callable[..., Any],
    loss: Callable[..., Any],
    *,
    has_aux: bool = False,
    predict_has_aux: bool = False,
) -> Callable[..., tuple[Any, Any, Any]]:
    """``(params, *args) -> (value, grads, (prediction, dL/dprediction))``.

    The building block of `prediction_value_and_grad`, for callers that need
    the prediction gradient itself (e.g. to log several readings of it).
    """

    def fn(params, *args):
        def forward(p):
            out = predict(p, *args)
            return out if predict_has_aux else (out, None)

        prediction, pullback, predict_aux = jax.vjp(forward, params, has_aux=True)
        _check_prediction(prediction)
        out, cotangent = jax.value_and_grad(lambda y: loss(y, *args), has_aux=has_aux)(
            prediction
        )
        (grads,) = pullback(cotangent)
        if predict_has_aux:
            value, loss_aux = out if has_aux else (out, None)
            out = (value, (predict_aux, loss_aux) if has_aux else predict_aux)
        return out, grads, (prediction, cotangent)

    return fn


def prediction_std(parts: list[jax.Array]) -> jax.Array:
    """The std of the entries of `parts` together, float32, safe at any range."""
    return _statistic.group_statistics([[jnp.atleast_1d(x) for x in parts]], "std")[0]


def prediction_value_and_grad(
    predict: Callable[..., Any],
    loss: Callable[..., Any],
    *,
    has_aux: bool = False,
    predict_has_aux: bool = False,
    reference_on: ReferenceOn = None,
) -> Callable[..., tuple[Any, Any, jax.Array]]:
    r"""The loss, its gradients and the std of dL/d(prediction), in one pass.

    For a loss :math:`L = \ell(f(\theta, x), x)` of a prediction
    :math:`\hat y = f(\theta, x)`, the returned function computes
    :math:`L`, :math:`\nabla_\theta L` and

    .. math::

      \sigma_\text{ref} = \operatorname{std}\left(
        \frac{\partial L}{\partial \hat y}\right),

    the std over all entries of the prediction together, which is the paper's
    reference for ``stablegrad(reference="prediction")``. The prediction's
    cotangent is the one backpropagation computes anyway (``jax.vjp`` of
    ``predict`` pulled back with the gradient of ``loss``), so the step costs
    what ``jax.value_and_grad`` of the composed loss costs, plus one small
    reduction. Derivatives of the network that ``predict`` returns (e.g. a
    PINN's input derivatives by nested ``jax.jvp``) are part of the prediction.

    Args:
      predict: ``predict(params, *args)``: the prediction, an array or a pytree
        of real floating arrays (with ``predict_has_aux``, a pair
        ``(prediction, aux)``).
      loss: ``loss(prediction, *args)``: a scalar (with ``has_aux``, a pair
        ``(loss, aux)``).
      has_aux: whether ``loss`` returns ``(loss, aux)``.
      predict_has_aux: whether ``predict`` returns ``(prediction, aux)``, e.g.
        updated BatchNorm statistics or NNX RNG state.
      reference_on: which parts of the prediction set the std: None (all), a
        pytree of bools with the prediction's structure (or a prefix of it), or
        a callable from the prediction to one.

    Returns:
      A function ``(params, *args) -> (value, grads, reference_scale)``.
      ``value`` is the loss, or ``(loss, aux)`` with ``has_aux``; with
      ``predict_has_aux`` it is ``(loss, predict_aux)``, or ``(loss,
      (predict_aux, aux))`` with both. ``grads`` has the structure of
      ``params``; ``reference_scale`` is a float32 scalar. It works under
      ``jax.jit`` and ``jax.vmap``.

    Examples:
      >>> import jax, jax.numpy as jnp, optax
      >>> import stablegrad_optax as sgo
      >>> def predict(params, batch):
      ...   hidden = jnp.tanh(batch["x"] @ params["hidden"]["w"])
      ...   return hidden @ params["out"]["w"]
      >>> def loss(y, batch):
      ...   return jnp.mean((y - batch["target"]) ** 2)
      >>> params = {"hidden": {"w": jnp.full((2, 3), 0.5)},
      ...           "out": {"w": jnp.full((3, 1), 0.5)}}
      >>> batch = {"x": jnp.array([[1.0, 2.0], [-1.0, 0.5]]),
      ...          "target": jnp.ones((2, 1))}
      >>> step = jax.jit(sgo.prediction_value_and_grad(predict, loss))
      >>> value, grads, scale = step(params, batch)
      >>> print(f"{value:.4f} {scale:.4f}")
      0.9988 0.8626
      >>> tx = optax.chain(sgo.stablegrad("prediction"), optax.adam(1e-3))
      >>> state = tx.init(params)
      >>> updates, state = tx.update(grads, state, params, reference_scale=scale)

    References:
      Mestre et al., `StableGrad: Backward Scale Control without Batch
      Normalization <https://arxiv.org/abs/2605.19856>`_, 2026
    """
    fixed = reference_on is not None and not callable(reference_on)
    if fixed and not jax.tree.leaves(reference_on):
        raise ValueError(
            "reference_on must be None, a callable, or a pytree of bools that "
            f"selects at least one part of the prediction, got {reference_on!r}."
        )
    inner = prediction_cotangent(
        predict, loss, has_aux=has_aux, predict_has_aux=predict_has_aux
    )

    def fn(params, *args):
        value, grads, (prediction, cotangent) = inner(params, *args)
        parts = selected(prediction, cotangent, reference_on)
        return value, grads, prediction_std(parts)

    return fn
