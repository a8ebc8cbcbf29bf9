"""Per-layer standard deviation or RMS, in float32, over the full float range.

The fast path reads each leaf once: a sum and a sum of squares, in float32 (or
float64 for float64 leaves), of the values minus a shift. For "std" the shift
is the layer's first entry, so a constant layer gives exactly zero and a large
mean does not cancel the variance away; "rms" uses no shift.

A float32 sum of squares overflows for entries above about 1e19 and flushes to
zero below about 1e-19. When any layer's mean square falls outside the safe
range (or is zero, or not finite), a `lax.cond` takes a second path that
scales each layer by a power of two from its largest entry before summing.
Scaling by a power of two is exact, so both paths agree where both are valid.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

STATISTICS = ("std", "rms")

# Mean squares in [2^-100, finite] are summed without loss: squares below the
# smallest normal float32 (2^-126) then contribute less than 2^-26 relatively.
_SAFE_MEAN_SQUARE = 2.0**-100
_MAX_EXPONENT = 125


def validate_statistic(statistic: object) -> None:
    if not isinstance(statistic, str) or statistic not in STATISTICS:
        raise ValueError(f"statistic must be one of {STATISTICS}, got {statistic!r}.")


def _accumulator(dtype) -> jnp.dtype:
    return jnp.promote_types(dtype, jnp.float32)


def _sums(groups, shifts, scales):
    """Sum and sum of squares of (x - shift) * scale for every group."""
    totals, squares = [], []
    for i, (group, shift) in enumerate(zip(groups, shifts, strict=True)):
        total = square = jnp.zeros((), jnp.float32)
        for leaf in group:
            acc = _accumulator(leaf.dtype)
            y = leaf.astype(acc) - shift.astype(acc)
            if scales is not None:
                y = y * scales[i].astype(acc)
            total = total + jnp.sum(y).astype(jnp.float32)
            square = square + jnp.sum(y * y).astype(jnp.float32)
        totals.append(total)
        squares.append(square)
    return jnp.stack(totals), jnp.stack(squares)


def _rescaled_sums(groups, shifts):
    """`_sums` after scaling each group to a largest magnitude in [0.5, 1)."""
    largest = []
    for group, shift in zip(groups, shifts, strict=True):
        peak = jnp.zeros((), jnp.float32)
        for leaf in group:
            acc = _accumulator(leaf.dtype)
            y = jnp.abs(leaf.astype(acc) - shift.astype(acc))
            peak = jnp.maximum(peak, jnp.max(y).astype(jnp.float32))
        largest.append(peak)
    largest = jnp.stack(largest)
    _, exponent = jnp.frexp(largest)
    usable = jnp.isfinite(largest) & (largest > 0)
    exponent = jnp.where(usable, jnp.clip(exponent, -_MAX_EXPONENT, _MAX_EXPONENT), 0)
    scales = jnp.ldexp(jnp.ones_like(largest), -exponent)
    totals, squares = _sums(groups, shifts, scales)
    return totals, squares, jnp.ldexp(jnp.ones_like(largest), exponent)


def group_statistics(
    groups: Sequence[Sequence[jax.Array]], statistic: str
) -> jax.Array:
    """The statistic of each group of arrays, over all their entries together.

    Args:
      groups: a non-empty sequence of non-empty sequences of floating arrays.
      statistic: "std" (population standard deviation) or "rms".

    Returns:
      A float32 vector with one entry per group. Zero for a constant group
      ("std") or an all-zero group ("rms"); NaN or Inf if a group holds one.
    """
    validate_statistic(statistic)
    counts = np.array([sum(int(np.size(x)) for x in g) for g in groups], np.float32)
    if statistic == "std":
        shifts = [jnp.ravel(g[0])[0] for g in groups]
    else:
        shifts = [jnp.zeros((), g[0].dtype) for g in groups]

    totals, squares = _sums(groups, shifts, None)
    mean_square = squares / counts
    unsafe = ~jnp.isfinite(mean_square) | (mean_square < _SAFE_MEAN_SQUARE)
    totals, squares, unscale = jax.lax.cond(
        jnp.any(unsafe),
        lambda: _rescaled_sums(groups, shifts),
        lambda: (totals, squares, jnp.ones_like(totals)),
    )
    mean_square = squares / counts
    if statistic == "std":
        mean = totals / counts
        mean_square = jnp.maximum(mean_square - mean * mean, 0.0)
    return jnp.sqrt(mean_square) * unscale
