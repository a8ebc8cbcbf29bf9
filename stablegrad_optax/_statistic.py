"""Per-layer standard deviation or RMS, in float32, over the full float range.

`group_statistics` returns one float32 statistic per group of leaves, taken
over all their entries together, accumulated in float32 (float64 for float64
leaves; bfloat16 leaves are converted). It holds over the whole finite range:
zero for a constant group ("std") or an all-zero one ("rms"), NaN or Inf when a
group holds one, and no overflow, flush to zero or cancellation for entries
that are huge, tiny or large against their spread.

The fast path reads each leaf for a sum and a sum of squares and takes the
variance as the mean square minus the squared mean; the per-layer factors are
then multiplied into the optimizer's own fusions, so these two reductions are
the whole cost over the optimizer. Small leaves (at most 2^14 entries) of the
same shape, dtype and sharding are stacked and reduced together, so that a deep
narrow network compiles to a handful of reductions rather than two per layer;
larger leaves are reduced where they lie, since stacking would copy them.
Leaves are never flattened or sliced, so a layer sharded across devices is
reduced in place: one all-reduce of the per-layer sums, nothing gathered. These
choices were made for speed; see the performance notes in the documentation.

The fast result is not trusted for a layer whose mean square falls outside the
safe float32 range (entries above about 1e19 overflow, below about 1e-19 flush
to zero), is zero or not finite, or whose mean is so large against its spread
that the subtraction cancels (variance below 1/16 of the mean square). Then a
`lax.cond` takes a careful path for every layer: each leaf's largest
magnitude gives a power-of-two scale (exact, read from the exponent bits), and
one more pass sums the scaled entries and their squares about a shift: the
mean from the fast sum (the midpoint of the leaf's range where that sum
overflowed), or the leaf's own value if it is constant, so that its std is
exactly zero. The sums correct the shift's rounding, and a group's leaves are
then brought to the scale of its largest and to one centre (Chan et al.'s
pairwise update). Both paths agree where both are valid. Only the branch taken
runs. A layer that is exactly zero (dead, frozen or masked) does not need the
careful path: when the fast result fails only on such layers (one more read
finds their largest magnitude zero), it stands, their statistic exactly zero.
The careful path stacks every same-shaped leaf, large ones too (a copy, made
only when that branch runs): its kernels and fusions are then a handful per
shape rather than per layer, which is what its compile time scales with. It
stacks them from the fast path's stacks, so that each leaf enters the
conditionals once (each of a conditional's operands costs compile time too).
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
# The fast variance is trusted down to this fraction of the mean square
# (rounding in the two sums is then amplified at most 16 times).
_SAFE_VARIANCE_RATIO = 1.0 / 16.0
# Leaves with at most this many entries are stacked with their same-shaped
# peers (a copy, cheap in cache); larger ones are reduced where they lie.
_STACK_MAX_SIZE = 1 << 14
_SPLIT_ROWS = 64  # rows per kernel of `split_rows`


def validate_statistic(statistic: object) -> None:
    if not isinstance(statistic, str) or statistic not in STATISTICS:
        raise ValueError(f"statistic must be one of {STATISTICS}, got {statistic!r}.")


class _Plan:
    """Which leaf belongs to which group; small leaves stacked by shape."""

    def __init__(self, groups: Sequence[Sequence[jax.Array]], members=None, rows=None):
        """Stacks the leaves of each bucket of `members` (by default
        `_buckets(leaves, _STACK_MAX_SIZE)`); `rows`, if given, holds each leaf
        as a (1, *shape) array in its accumulator dtype, to stack from."""
        leaves = [leaf for group in groups for leaf in group]
        sizes = [len(g) for g in groups]
        self.num_groups = len(groups)
        self.group_of = np.repeat(np.arange(len(groups)), sizes)
        self.sizes = np.array([np.size(x) for x in leaves], np.float32)
        self.counts = np.zeros(len(groups), np.float32)
        np.add.at(self.counts, self.group_of, self.sizes)
        if members is None:
            members = _buckets(leaves, _STACK_MAX_SIZE)
        self.members = members
        self.unbucket = np.argsort(np.concatenate(members))
        # Each bucket as one (k, *shape) array in its accumulator dtype (f32 or
        # f64); k leaves of one shape.
        self.stacks = []
        for m in members:
            if rows is not None:
                self.stacks.append(jnp.concatenate([rows[i] for i in m]))
                continue
            acc = jnp.promote_types(leaves[m[0]].dtype, jnp.float32)
            self.stacks.append(jnp.stack([leaves[i] for i in m]).astype(acc))

    def rows(self) -> list[jax.Array]:
        """Each leaf as a (1, *shape) row of its stack, in the groups' order."""
        rows = [x[j : j + 1] for x in self.stacks for j in range(len(x))]
        return [rows[i] for i in self.unbucket]

    def per_leaf(self, per_bucket: Sequence[jax.Array]) -> jax.Array:
        """Per-bucket (k,) results -> one value per leaf, in the groups' order."""
        return jnp.concatenate(per_bucket)[self.unbucket]

    def per_group(self, per_bucket: Sequence[jax.Array], op=jax.ops.segment_sum):
        """Per-bucket (k,) results -> one value per group (summed, or `op`)."""
        per_leaf = self.per_leaf(per_bucket)
        if len(per_leaf) == self.num_groups:  # one leaf per group
            return per_leaf
        return op(
            per_leaf,
            self.group_of,
            num_segments=self.num_groups,
            indices_are_sorted=True,
        )

    def sums(self, values: Sequence[jax.Array]) -> jax.Array:
        """Per-group float32 sum of `values` (one array per bucket)."""
        return self.per_group(
            [jnp.sum(y, _rows(y)).astype(jnp.float32) for y in values]
        )


def _buckets(leaves: Sequence[jax.Array], max_stack: int | None) -> list:
    """Indices of the leaves of each shape, dtype and sharding; with
    `max_stack`, a leaf with more entries is a bucket of its own (a stack of
    one is a reshape, not a copy)."""
    buckets: dict[object, list[int]] = {}
    for i, leaf in enumerate(leaves):
        key = (tuple(np.shape(leaf)), jnp.dtype(leaf.dtype), _sharding_of(leaf))
        if max_stack is not None and np.size(leaf) > max_stack:
            key = i
        buckets.setdefault(key, []).append(i)
    return [np.array(m) for m in buckets.values()]


def split_rows(matrix: jax.Array) -> list[jax.Array]:
    """The rows of `matrix`, exactly, as separate arrays, a kernel per 64 rows.

    XLA compiles one kernel for fusions that are the same computation (a deep
    network's same-shaped layers, each rescaled and then updated by the
    optimizer), unless each reads its own row of a shared array: the slice
    makes every one of them a kernel of its own, ten times the compile time
    of the rest. A variadic max-reduction over rows paired with rows of -inf
    hands each row over as a buffer of its own (``max(x, -inf)`` is `x` for
    every float, NaN and signed zero included), so those fusions stay alike.
    Its compile time grows faster than its operands: hence 64 rows a kernel.
    """
    pad = jnp.full_like(matrix[0], -jnp.inf)
    both = lambda a, b: [jnp.maximum(x, y) for x, y in zip(a, b, strict=True)]
    rows = []
    for start in range(0, len(matrix), _SPLIT_ROWS):
        pairs = [jnp.stack([row, pad]) for row in matrix[start : start + _SPLIT_ROWS]]
        lows = [np.array(-np.inf, matrix.dtype)] * len(pairs)
        rows += jax.lax.reduce(pairs, lows, both, (0,))
    return rows


def _sharding_of(leaf) -> object:
    """The explicit sharding spec of a leaf, if any (stacked leaves share it)."""
    try:
        return str(jax.typeof(leaf).sharding.spec)
    except (AttributeError, TypeError):
        return None


def _rows(x: jax.Array) -> tuple[int, ...]:
    return tuple(range(1, x.ndim))


def _max_min(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The largest and smallest entry of each row of `x`. (Two reductions: a
    variadic one would gather a sharded leaf.)"""
    return jnp.max(x, _rows(x)), jnp.min(x, _rows(x))


def _powers_of_two(highs: jax.Array, lows: jax.Array):
    """(scale, 1 / scale), powers of two with scale * max(|highs|, |lows|) in
    [1, 2), read from the exponent bits (a few integer operations, where
    `frexp` and `ldexp` put dozens into every kernel that reads them). The
    exponent is clipped to the normal range, so both are exact; zero gets the
    largest scale, Inf and NaN the smallest (they stay what they are)."""
    largest = jnp.maximum(jnp.abs(highs), jnp.abs(lows))
    info = jnp.finfo(largest.dtype)
    bits = jnp.dtype(f"int{info.bits}")
    bias = (1 << (info.nexp - 1)) - 1
    exponent = jax.lax.bitcast_convert_type(largest, bits) >> info.nmant
    exponent = jnp.clip(exponent & ((1 << info.nexp) - 1), 2, 2 * bias - 2)
    power = lambda e: jax.lax.bitcast_convert_type(e << info.nmant, largest.dtype)
    return power(2 * bias - exponent), power(exponent)


def _careful_rows(x, highs, lows, totals, statistic: str):
    """Per row (leaf) of a bucket: 1 / scale, and of its entries times scale a
    shift and the sum and the sum of squares about it. The shift is their
    value if they are constant, else their mean from the fast sum (its
    midpoint if that overflowed), zero for "rms"."""
    scale, unscale = _powers_of_two(highs, lows)
    lift = (-1,) + (1,) * (x.ndim - 1)
    scaled = x * scale.reshape(lift)
    if statistic == "rms":
        zero = jnp.zeros_like(scale)
        return unscale, zero, zero, jnp.sum(scaled * scaled, _rows(x))
    mean = totals * scale / np.prod(x.shape[1:])
    mean = jnp.where(jnp.isfinite(totals), mean, (highs * scale + lows * scale) / 2)
    shift = jnp.where(highs == lows, highs * scale, mean)  # constant: exact
    centred = scaled - shift.reshape(lift)
    return unscale, shift, jnp.sum(centred, _rows(x)), jnp.sum(centred**2, _rows(x))


def _careful(plan: _Plan, totals, max_min, statistic: str) -> jax.Array:
    """The statistic of each group: each leaf scaled by a power of two to a
    largest magnitude below 2, and summed about its shift; then a group's
    leaves rescaled to its largest one's scale and moved to a common centre.

    `totals` and `max_min` hold, per bucket, the sum of each leaf (from the
    fast path) and its largest and smallest entries.
    """
    highs = plan.per_group([m[0] for m in max_min], jax.ops.segment_max)
    lows = plan.per_group([m[1] for m in max_min], jax.ops.segment_min)
    parts = [
        _careful_rows(x, *m, t, statistic)
        for x, m, t in zip(plan.stacks, max_min, totals, strict=True)
    ]
    unscale, shift, totals, squares = (
        plan.per_leaf(p) for p in zip(*parts, strict=True)
    )
    if len(unscale) > plan.num_groups:  # some group has several leaves
        group = lambda v, op=jax.ops.segment_sum: op(
            v, plan.group_of, num_segments=plan.num_groups, indices_are_sorted=True
        )
        top = group(unscale, jax.ops.segment_max)
        ratio = unscale / top[plan.group_of]  # a power of two, at most 1
        shift, totals, squares = shift * ratio, totals * ratio, squares * ratio**2
        apart = shift - (group(plan.sizes * shift) / plan.counts)[plan.group_of]
        squares = group(squares + apart * (2 * totals + plan.sizes * apart))
        totals, unscale = group(totals + plan.sizes * apart), top
    variance = jnp.maximum(squares - totals * totals / plan.counts, 0) / plan.counts
    if statistic == "std":
        variance = jnp.where(highs == lows, 0, variance)
    return jnp.sqrt(variance) * unscale


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

    def variance(totals, squares):
        mean_square = squares / plan.counts
        if statistic == "rms":
            return mean_square
        mean = totals / plan.counts
        return jnp.maximum(mean_square - mean * mean, 0.0)

    row_totals = [jnp.sum(x, _rows(x)) for x in plan.stacks]
    totals = plan.per_group([t.astype(jnp.float32) for t in row_totals])
    squares = plan.sums([x * x for x in plan.stacks])
    mean_square = squares / plan.counts
    fast = variance(totals, squares)
    trusted = (
        jnp.isfinite(mean_square)
        & (mean_square >= _SAFE_MEAN_SQUARE)
        & (fast >= _SAFE_VARIANCE_RATIO * mean_square)
    )

    # The careful path stacks every same-shaped leaf, large ones too (a copy,
    # made only when it runs): its kernels and fusions are then one set per
    # shape rather than per leaf, which is what its compile time scales with.
    whole = _buckets([leaf for group in groups for leaf in group], None)
    shared = len(whole) == len(plan.members)  # no two large leaves alike
    # Otherwise it stacks the fast stacks' rows and takes the leaves' sums as
    # one vector made here: each leaf enters the conditionals once.
    leaf_totals = None if shared else plan.per_leaf(row_totals)

    def unless_zero():
        # Layers that are exactly zero (dead or frozen) have their statistic,
        # zero, from the fast sums: one more pass finds their largest magnitude
        # zero, no careful path. Where the careful path reuses the fast stacks,
        # that pass reads each leaf's largest and smallest entries (two
        # reductions), and the careful path starts from them.
        if shared:
            max_min = [_max_min(x) for x in plan.stacks]
            largest = [jnp.maximum(-low, high) for high, low in max_min]
        else:
            largest = [jnp.max(jnp.abs(x), _rows(x)) for x in plan.stacks]
        zero = jnp.all(trusted | (plan.per_group(largest, jax.ops.segment_max) == 0))

        def careful():
            if shared:
                return _careful(plan, row_totals, max_min, statistic)
            stacked = _Plan(groups, whole, plan.rows())
            max_min_ = [_max_min(x) for x in stacked.stacks]
            leaf_totals_ = [leaf_totals[m] for m in whole]
            return _careful(stacked, leaf_totals_, max_min_, statistic)

        careful_32 = lambda: careful().astype(jnp.float32)
        return jax.lax.cond(zero, lambda: jnp.sqrt(fast), careful_32)

    return jax.lax.cond(jnp.all(trusted), lambda: jnp.sqrt(fast), unless_zero)
