"""AdamP and SGDP (Heo et al., 2021) as optax transformations."""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from stablegrad_optax._checks import validate_number
from stablegrad_optax._projection import scale_by_projection


class AdamDirectionState(NamedTuple):
    """Step count and the two moment estimates of `adamp`'s direction."""

    count: jax.Array  # shape=(), dtype=int32
    mu: optax.Updates
    nu: optax.Updates


def _finite_non_negative(x: float) -> bool:
    return math.isfinite(x) and x >= 0


def _validate_beta(name, value):
    validate_number(name, value, lambda x: 0 <= x < 1, "a number in [0, 1)")


def scale_by_adamp_direction(
    b1: jax.typing.ArrayLike = 0.9,
    b2: jax.typing.ArrayLike = 0.999,
    eps: jax.typing.ArrayLike = 1e-8,
    *,
    nesterov: bool = False,
) -> optax.GradientTransformation:
    r"""Adam's bias-corrected direction, as AdamP computes it.

    :math:`m/(\sqrt{v}/\sqrt{1-\beta_2^t} + \epsilon)/(1-\beta_1^t)`; with
    ``nesterov``, :math:`m` is replaced by :math:`\beta_1 m + (1-\beta_1) g`
    (the reference implementation's look-ahead, which differs from
    ``optax.scale_by_adam(nesterov=True)``'s bias correction). Where the
    denominator is 0 (``eps = 0`` and a gradient that has always been 0) the
    direction is 0, not NaN.

    Args:
      b1: decay of the first moment, in [0, 1).
      b2: decay of the second moment, in [0, 1).
      eps: added to the denominator (>= 0).
      nesterov: use the look-ahead first moment.

    Returns:
      An `optax.GradientTransformation`.
    """
    _validate_beta("b1", b1)
    _validate_beta("b2", b2)
    validate_number("eps", eps, _finite_non_negative, "a finite number >= 0")

    def init_fn(params):
        zeros = lambda: jax.tree.map(jnp.zeros_like, params)
        return AdamDirectionState(jnp.zeros((), jnp.int32), zeros(), zeros())

    def update_fn(updates, state, params=None):
        del params
        count = optax.safe_increment(state.count)
        # Moments keep their dtype (hyperparameters may be float32 arrays).
        mu = jax.tree.map(
            lambda m, g: (b1 * m + (1 - b1) * g).astype(m.dtype), state.mu, updates
        )
        nu = jax.tree.map(
            lambda v, g: (b2 * v + (1 - b2) * g * g).astype(v.dtype), state.nu, updates
        )
        t = count.astype(jnp.float32)
        correction1, correction2 = 1 - b1**t, 1 - b2**t

        def direction(m, v, g):
            first = b1 * m + (1 - b1) * g if nesterov else m
            denominator = jnp.sqrt(v) / jnp.sqrt(correction2) + eps
            # With eps = 0 a gradient that has always been 0 would give 0 / 0:
            # its direction is 0 (the reference would return NaN). Only exact
            # zeros: a NaN gradient still gives a NaN update.
            zero = denominator == 0
            safe = jnp.where(zero, 1.0, denominator)
            out = jnp.where(zero, 0.0, first / safe) / correction1
            return out.astype(g.dtype)

        new = jax.tree.map(direction, mu, nu, updates)
        return new, AdamDirectionState(count, mu, nu)

    return optax.GradientTransformation(init_fn, update_fn)


def scale_by_sgdp_direction(
    momentum: jax.typing.ArrayLike = 0.0,
    dampening: jax.typing.ArrayLike = 0.0,
    *,
    nesterov: bool = False,
) -> optax.GradientTransformation:
    """SGD's momentum direction as SGDP computes it.

    ``buf = momentum * buf + (1 - dampening) * g`` from ``buf = 0`` (PyTorch's
    SGD instead starts from ``buf = g``); the direction is ``buf``, or
    ``g + momentum * buf`` with ``nesterov``.

    Args:
      momentum: in [0, 1).
      dampening: in [0, 1].
      nesterov: Nesterov momentum (needs momentum > 0).

    Returns:
      An `optax.GradientTransformation`.
    """
    validate_number("momentum", momentum, lambda x: 0 <= x < 1, "a number in [0, 1)")
    validate_number("dampening", dampening, lambda x: 0 <= x <= 1, "in [0, 1]")
    if nesterov and not isinstance(momentum, jax.core.Tracer) and momentum == 0:
        raise ValueError("nesterov=True needs momentum > 0, got momentum=0.")

    def init_fn(params):
        return optax.TraceState(trace=jax.tree.map(jnp.zeros_like, params))

    def update_fn(updates, state, params=None):
        del params
        buf = jax.tree.map(
            lambda b, g: (momentum * b + (1 - dampening) * g).astype(b.dtype),
            state.trace,
            updates,
        )
        if nesterov:
            new = jax.tree.map(
                lambda g, b: (g + momentum * b).astype(g.dtype), updates, buf
            )
        else:
            new = buf
        return new, optax.TraceState(trace=buf)

    return optax.GradientTransformation(init_fn, update_fn)


def adamp(
    learning_rate: optax.ScalarOrSchedule,
    b1: jax.typing.ArrayLike = 0.9,
    b2: jax.typing.ArrayLike = 0.999,
    eps: jax.typing.ArrayLike = 1e-8,
    weight_decay: jax.typing.ArrayLike = 0.0,
    delta: jax.typing.ArrayLike = 0.1,
    wd_ratio: jax.typing.ArrayLike = 0.1,
    nesterov: bool = False,
    *,
    channel_axis: int | None = None,
) -> optax.GradientTransformation:
    """AdamP: Adam without radial updates to scale-invariant weights.

    Matches the reference implementation (the ``adamp`` package): Adam's
    direction, `scale_by_projection` on weights whose gradient is nearly
    orthogonal to them (their weight decay times ``wd_ratio``), decoupled weight
    decay ``lr * weight_decay * param``.

    Args:
      learning_rate: a float or an optax schedule.
      b1: decay of the first moment.
      b2: decay of the second moment.
      eps: Adam's denominator term, and the norm floor of the projection.
      weight_decay: decoupled weight decay (>= 0).
      delta: threshold of the cosine test (> 0).
      wd_ratio: weight-decay multiplier for projected weights, in [0, 1].
      nesterov: the reference's Nesterov look-ahead.
      channel_axis: output-channel axis of weights (None: -1, Flax's layout;
        0: PyTorch's). See `scale_by_projection`.

    Returns:
      An `optax.GradientTransformation` (``update`` needs ``params``).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> import stablegrad_optax as sgo
      >>> params = {"w": jnp.ones((3, 2)), "b": jnp.zeros(2)}
      >>> tx = sgo.adamp(1e-2, weight_decay=1e-4)
      >>> grads = jax.tree.map(jnp.ones_like, params)
      >>> updates, state = tx.update(grads, tx.init(params), params)
      >>> updates["w"].shape
      (3, 2)

    References:
      Heo et al., `AdamP: Slowing Down the Slowdown for Momentum Optimizers on
      Scale-invariant Weights <https://arxiv.org/abs/2006.08217>`_, ICLR 2021
    """
    direction = scale_by_adamp_direction(b1=b1, b2=b2, eps=eps, nesterov=nesterov)
    return optax.chain(
        scale_by_projection(
            direction,
            delta=delta,
            wd_ratio=wd_ratio,
            eps=eps,
            weight_decay=weight_decay,
            channel_axis=channel_axis,
        ),
        optax.scale_by_learning_rate(learning_rate),
    )


def sgdp(
    learning_rate: optax.ScalarOrSchedule,
    momentum: jax.typing.ArrayLike = 0.0,
    dampening: jax.typing.ArrayLike = 0.0,
    weight_decay: jax.typing.ArrayLike = 0.0,
    nesterov: bool = False,
    eps: jax.typing.ArrayLike = 1e-8,
    delta: jax.typing.ArrayLike = 0.1,
    wd_ratio: jax.typing.ArrayLike = 0.1,
    *,
    channel_axis: int | None = None,
) -> optax.GradientTransformation:
    """SGDP: SGD (momentum) without radial updates to scale-invariant weights.

    Matches the reference implementation: the momentum direction,
    `scale_by_projection`, and weight decay
    ``lr * weight_decay * ratio / (1 - momentum) * param``. As in the
    reference, without Nesterov the projected update also replaces the
    momentum buffer (the reference projects the buffer in place).

    Args:
      learning_rate: a float or an optax schedule.
      momentum: in [0, 1).
      dampening: in [0, 1].
      weight_decay: weight decay (>= 0).
      nesterov: Nesterov momentum (needs momentum > 0).
      eps: the norm floor of the projection (>= 0).
      delta: threshold of the cosine test (> 0).
      wd_ratio: weight-decay multiplier for projected weights, in [0, 1].
      channel_axis: output-channel axis of weights (None: -1, Flax's layout;
        0: PyTorch's). See `scale_by_projection`.

    Returns:
      An `optax.GradientTransformation` (``update`` needs ``params``).

    Examples:
      A gradient orthogonal to the weight: the update is projected, and it
      stays orthogonal to the weight (it does not change its norm to first
      order).

      >>> import jax.numpy as jnp
      >>> import stablegrad_optax as sgo
      >>> params = {"w": jnp.ones((3, 2))}
      >>> grads = {"w": jnp.array([[1.0, -1.0]] * 3)}
      >>> tx = sgo.sgdp(0.1, momentum=0.9, nesterov=True)
      >>> updates, state = tx.update(grads, tx.init(params), params)
      >>> bool(state[0].projected["w"]), float(jnp.sum(updates["w"] * params["w"]))
      (True, 0.0)

    References:
      Heo et al., `AdamP: Slowing Down the Slowdown for Momentum Optimizers on
      Scale-invariant Weights <https://arxiv.org/abs/2006.08217>`_, ICLR 2021
    """
    direction = scale_by_sgdp_direction(
        momentum=momentum, dampening=dampening, nesterov=nesterov
    )
    validate_number(
        "weight_decay", weight_decay, _finite_non_negative, "a finite number >= 0"
    )
    return optax.chain(
        scale_by_projection(
            direction,
            delta=delta,
            wd_ratio=wd_ratio,
            eps=eps,
            # The reference decays by lr * wd * ratio / (1 - momentum).
            weight_decay=weight_decay / (1 - momentum),
            channel_axis=channel_axis,
            project_trace=not nesterov,
        ),
        optax.scale_by_learning_rate(learning_rate),
    )
