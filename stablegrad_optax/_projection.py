"""AdamP / SGDP: no radial updates for scale-invariant weights (Heo et al., 2021)."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from stablegrad_optax._checks import validate_number


class ProjectionState(NamedTuple):
    """State of `scale_by_projection`.

    Attributes:
      inner_state: the state of the wrapped transformation.
      projected: per leaf, whether its last update was projected (a bool
        scalar; always False for leaves with fewer than two axes).
    """

    inner_state: optax.OptState
    projected: Any  # a pytree like params of bool scalars, shape=()


def _norm(x: jax.Array, axes: tuple[int, ...]) -> jax.Array:
    """The 2-norm over `axes`, kept as size-1 axes for broadcasting."""
    return jnp.sqrt(jnp.sum(x * x, axis=axes, keepdims=True))


def _largest_cosine(grad: jax.Array, param: jax.Array, eps, axes) -> jax.Array:
    """max over the rows (what `axes` leave) of |cos(grad_row, param_row)|.

    Norms are floored at eps. Each row is divided by its norm before the
    product (as PyTorch's ``cosine_similarity`` does), so huge entries do not
    overflow.
    """
    unit = lambda x: x / jnp.maximum(_norm(x, axes), eps)
    return jnp.max(jnp.abs(jnp.sum(unit(grad) * unit(param), axis=axes)))


def _without_radial(update: jax.Array, param: jax.Array, eps, axes) -> jax.Array:
    """`update` minus its component along `param`, row by row (over `axes`)."""
    unit = param / (_norm(param, axes) + eps)
    return update - unit * jnp.sum(unit * update, axis=axes, keepdims=True)


def _project_leaf(update, grad, param, delta, eps, channel_axis):
    """The projected update of one weight and whether it was projected.

    The channel view (one row per entry of `channel_axis`) is tried first, then
    the whole tensor (the layer view): the first whose largest |cos(grad,
    param)| is below delta / sqrt(row length) removes the radial component of
    the update in that view. Rows are reduced over the other axes in place: no
    transpose or reshape of the leaf (fast, and fine under explicit sharding).
    """
    channel = channel_axis % param.ndim
    views = (
        tuple(i for i in range(param.ndim) if i != channel),
        tuple(range(param.ndim)),
    )
    fires, projected = [], []
    for axes in views:
        row_length = math.prod(param.shape[i] for i in axes)
        fires.append(
            _largest_cosine(grad, param, eps, axes) < delta / math.sqrt(row_length)
        )
        projected.append(_without_radial(update, param, eps, axes))
    by_channel, by_layer = fires
    out = jnp.where(by_channel, projected[0], jnp.where(by_layer, projected[1], update))
    return out.astype(update.dtype), by_channel | by_layer


def scale_by_projection(
    inner: optax.GradientTransformation,
    delta: jax.typing.ArrayLike = 0.1,
    wd_ratio: jax.typing.ArrayLike = 0.1,
    eps: jax.typing.ArrayLike = 1e-8,
    *,
    weight_decay: jax.typing.ArrayLike = 0.0,
    channel_axis: int | None = None,
    project_trace: bool = False,
) -> optax.GradientTransformation:
    r"""Removes the radial part of `inner`'s update for scale-invariant weights.

    The projection of AdamP and SGDP (Heo et al., 2021). For every weight (a
    leaf with two or more axes) the cosine similarity between its gradient and
    the weight is taken per output channel, then over the whole tensor. If the
    largest :math:`|\cos|` of a view is below :math:`\delta / \sqrt{n}` (``n``
    entries per row of the view), the weight is taken to be scale-invariant
    (e.g. followed by a normalisation): the component of `inner`'s update along
    the weight is removed, row by row in that view, and its weight decay is
    multiplied by ``wd_ratio``. Otherwise, and for leaves with fewer than two
    axes (biases, scales), the update is `inner`'s. Decoupled weight decay
    ``weight_decay * ratio * param`` is then added (scale by the learning rate
    after this transformation).

    The test needs the raw gradient while the projection acts on `inner`'s
    update (an Adam or momentum direction), so this transformation wraps
    `inner` instead of following it in a chain.

    Args:
      inner: the transformation whose update is projected (e.g. Adam's
        direction before the learning rate).
      delta: threshold of the cosine test (> 0).
      wd_ratio: weight-decay multiplier for projected weights, in [0, 1].
      eps: floor of the norms in the cosine and added to the norm in the
        projection (>= 0).
      weight_decay: decoupled weight decay (>= 0) added to the update.
      channel_axis: the output-channel axis of weights; None (the default) is
        -1, Flax's layout (Dense ``(in, out)``, Conv ``HWIO``); 0 for PyTorch
        layouts. Under `optax.inject_hyperparams`, pass a value other than
        None through ``static_args=("channel_axis",)``: an int would be
        injected as a traced array.
      project_trace: also store the projected update as `inner`'s momentum
        (``inner_state.trace``, an `optax.TraceState`). The reference SGDP
        without Nesterov projects its momentum buffer in place (the buffer is
        the update), so later steps build on the projected momentum.

    Returns:
      An `optax.GradientTransformation`; its ``update`` needs ``params``.

    Examples:
      >>> import jax.numpy as jnp, optax
      >>> import stablegrad_optax as sgo
      >>> w = jnp.array([[3.0, 0.0], [0.0, 4.0]])
      >>> g = jnp.array([[0.0, 1.0], [1.0, 0.0]])  # orthogonal to w: fires
      >>> tx = sgo.scale_by_projection(optax.identity())
      >>> updates, state = tx.update({"w": g}, tx.init({"w": w}), {"w": w})
      >>> bool(state.projected["w"])
      True
    """
    validate_number("delta", delta, lambda x: x > 0, "a number > 0")
    validate_number("wd_ratio", wd_ratio, lambda x: 0 <= x <= 1, "a number in [0, 1]")
    finite = lambda x: math.isfinite(x) and x >= 0
    validate_number("eps", eps, finite, "a finite number >= 0")
    validate_number("weight_decay", weight_decay, finite, "a finite number >= 0")
    if channel_axis is None:
        channel_axis = -1
    if not isinstance(channel_axis, int) or isinstance(channel_axis, bool):
        raise ValueError(
            f"channel_axis must be an int or None, got {channel_axis!r} (under "
            "optax.inject_hyperparams, list it in static_args)."
        )

    def init_fn(params):
        projected = jax.tree.map(lambda _: jnp.zeros((), bool), params)
        inner_state = inner.init(params)
        if project_trace and not hasattr(inner_state, "trace"):
            raise ValueError(
                "project_trace=True needs an inner transformation whose state has "
                f"a `trace` (an optax.TraceState), got {type(inner_state).__name__}."
            )
        return ProjectionState(inner_state, projected)

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError(
                "scale_by_projection (AdamP/SGDP) needs params: call "
                "update(updates, state, params)."
            )
        directions, inner_state = inner.update(updates, state.inner_state, params)

        def leaf(direction, grad, param):
            if param.ndim < 2:
                return direction, jnp.zeros((), bool)
            if not -param.ndim <= channel_axis < param.ndim:
                raise ValueError(
                    f"channel_axis={channel_axis} is out of range for a weight "
                    f"of shape {param.shape}."
                )
            return _project_leaf(direction, grad, param, delta, eps, channel_axis)

        pairs = jax.tree.map(leaf, directions, updates, params)
        treedef = jax.tree.structure(updates)
        directions, projected = jax.tree.transpose(
            treedef, jax.tree.structure((0, 0)), pairs
        )
        if project_trace:
            inner_state = inner_state._replace(trace=directions)
        new = jax.tree.map(
            lambda d, p, fired: d + weight_decay * jnp.where(fired, wd_ratio, 1.0) * p,
            directions,
            params,
            projected,
        )
        return new, ProjectionState(inner_state, projected)

    return optax.GradientTransformation(init_fn, update_fn)
