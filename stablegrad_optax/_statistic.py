"""Per-layer standard deviation or RMS, in float32, over the full float range.

The fast path reads each leaf once for a sum and a sum of squares, in float32
(or float64 for float64 leaves), of the values minus a shift. For "std" the
shift is the layer's first entry, so a constant layer gives exactly zero and a
large mean does not cancel the variance away; "rms" uses no shift. Leaves of
the same shape and dtype are stacked and reduced together: a 64-layer MLP
compiles to a handful of reductions instead of two per layer (measured on CPU:
23 us instead of 81 us per update at depth 16, width 50). The stack is a
transient copy of those weight gradients.

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


class _Plan:
    """Which leaf belongs to which group; leaves stacked by shape and dtype."""

    def __init__(self, groups: Sequence[Sequence[jax.Array]]):
        leaves = [leaf for group in groups for leaf in group]
        sizes = [len(g) for g in groups]
        self.num_groups = len(groups)
        self.group_of = np.repeat(np.arange(len(groups)), sizes)
        self.first_leaf = np.cumsum([0, *sizes[:-1]])
        self.counts = np.array([sum(int(np.size(x)) for x in g) for g in groups])
        self.counts = self.counts.astype(np.float32)
        buckets: dict[tuple, list[int]] = {}
        for i, leaf in enumerate(leaves):
            key = (tuple(np.shape(leaf)), jnp.dtype(leaf.dtype))
            buckets.setdefault(key, []).append(i)
        self.members = [np.array(m) for m in buckets.values()]
        self.unbucket = np.argsort(np.concatenate(self.members))
        # Each bucket as one (k, n) array in its accumulator dtype (f32 or f64).
        self.stacks = []
        for m in self.members:
            acc = jnp.promote_types(leaves[m[0]].dtype, jnp.float32)
            flat = [jnp.ravel(leaves[i]) for i in m]
            self.stacks.append(jnp.stack(flat).astype(acc))

    def per_group(self, per_bucket: list[jax.Array], op=jax.ops.segment_sum):
        """Per-bucket (k,) results -> one value per group (summed, or `op`)."""
        per_leaf = jnp.concatenate(per_bucket)[self.unbucket]
        if len(per_leaf) == self.num_groups:  # one leaf per group
            return per_leaf
        return op(
            per_leaf,
            self.group_of,
            num_segments=self.num_groups,
            indices_are_sorted=True,
        )

    def first_entries(self) -> jax.Array:
        """The first entry of each group's first leaf, in float32."""
        firsts = [x[:, 0].astype(jnp.float32) for x in self.stacks]
        return jnp.concatenate(firsts)[self.unbucket][self.first_leaf]


def _centred(plan: _Plan, shifts, scales):
    """(x - shift) * scale for every bucket, with shift and scale per group."""
    for members, x in zip(plan.members, plan.stacks, strict=True):
        groups = plan.group_of[members]
        y = x - shifts[groups][:, None].astype(x.dtype)
        if scales is not None:
            y = y * scales[groups][:, None].astype(x.dtype)
        yield y


def _sums(plan: _Plan, shifts, scales):
    """Per-group sum and sum of squares of (x - shift) * scale."""
    totals, squares = [], []
    for y in _centred(plan, shifts, scales):
        totals.append(jnp.sum(y, axis=1).astype(jnp.float32))
        squares.append(jnp.sum(y * y, axis=1).astype(jnp.float32))
    return plan.per_group(totals), plan.per_group(squares)


def _rescaled_sums(plan: _Plan, shifts):
    """`_sums` after scaling each group to a largest magnitude in [0.5, 1)."""
    peaks = [
        jnp.max(jnp.abs(y), axis=1).astype(jnp.float32)
        for y in _centred(plan, shifts, None)
    ]
    largest = plan.per_group(peaks, jax.ops.segment_max)
    _, exponent = jnp.frexp(largest)
    usable = jnp.isfinite(largest) & (largest > 0)
    exponent = jnp.where(usable, jnp.clip(exponent, -_MAX_EXPONENT, _MAX_EXPONENT), 0)
    totals, squares = _sums(plan, shifts, jnp.ldexp(jnp.ones_like(largest), -exponent))
    return totals, squares, jnp.ldexp(jnp.ones_like(largest), exponent)


def group_statistics(
    groups: Sequence[Sequence[jax.Array]], statistic: str
) -> jax.Array:
    """The statistic of each group of arrays, over all their entries together.

    Args:
      groups: a non-empty sequence of non-empty sequences of non-empty floating
        arrays.
      statistic: "std" (population standard deviation) or "rms".

    Returns:
      A float32 vector with one entry per group. Zero for a constant group
      ("std") or an all-zero group ("rms"); NaN or Inf if a group holds one.
    """
    validate_statistic(statistic)
    plan = _Plan(groups)
    if statistic == "std":
        shifts = plan.first_entries()
    else:
        shifts = jnp.zeros(plan.num_groups, jnp.float32)

    totals, squares = _sums(plan, shifts, None)
    mean_square = squares / plan.counts
    unsafe = ~jnp.isfinite(mean_square) | (mean_square < _SAFE_MEAN_SQUARE)
    totals, squares, unscale = jax.lax.cond(
        jnp.any(unsafe),
        lambda: _rescaled_sums(plan, shifts),
        lambda: (totals, squares, jnp.ones_like(totals)),
    )
    mean_square = squares / plan.counts
    if statistic == "std":
        mean = totals / plan.counts
        mean_square = jnp.maximum(mean_square - mean * mean, 0.0)
    return jnp.sqrt(mean_square) * unscale
