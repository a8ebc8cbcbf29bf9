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
`lax.cond` takes a careful path for every layer: the largest magnitude gives a
power-of-two scale (exact), a first pass gives the scaled mean, a second the
sums about that mean; a constant layer is centred on its own value, so its std
is exactly zero. Both paths agree where both are valid. Only the branch taken
runs. A layer that is exactly zero (dead, frozen or masked) does not need the
careful path: when the fast result fails only on such layers (one more read
finds their largest magnitude zero), it stands, their statistic exactly zero.
The careful path stacks every same-shaped leaf, large ones too (a copy, made
only when that branch runs): its kernels are then a handful per shape rather
than per layer, which is what its compile time scales with.
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
_MAX_EXPONENT = 125
# Leaves with at most this many entries are stacked with their same-shaped
# peers (a copy, cheap in cache); larger ones are reduced where they lie.
_STACK_MAX_SIZE = 1 << 14
_SPLIT_ROWS = 64  # rows per kernel of `split_rows`


def validate_statistic(statistic: object) -> None:
    if not isinstance(statistic, str) or statistic not in STATISTICS:
        raise ValueError(f"statistic must be one of {STATISTICS}, got {statistic!r}.")


class _Plan:
    """Which leaf belongs to which group; leaves stacked by shape and dtype."""

    def __init__(
        self, groups: Sequence[Sequence[jax.Array]], max_stack: int | None = None
    ):
        """Stacks leaves of one shape, dtype and sharding; with `max_stack`,
        only those with at most that many entries."""
        leaves = [leaf for group in groups for leaf in group]
        sizes = [len(g) for g in groups]
        self.num_groups = len(groups)
        self.group_of = np.repeat(np.arange(len(groups)), sizes)
        self.counts = np.array([sum(int(np.size(x)) for x in g) for g in groups])
        self.counts = self.counts.astype(np.float32)
        buckets: dict[tuple, list[int]] = {}
        for i, leaf in enumerate(leaves):
            key = (tuple(np.shape(leaf)), jnp.dtype(leaf.dtype), _sharding_of(leaf))
            if max_stack is not None and np.size(leaf) > max_stack:
                key = i  # alone: a stack of one is a reshape, not a copy
            buckets.setdefault(key, []).append(i)
        self.members = [np.array(m) for m in buckets.values()]
        self.unbucket = np.argsort(np.concatenate(self.members))
        # Each bucket's groups, a row per bucket (padded with its first group).
        width = max(len(m) for m in self.members)
        self.padded = np.stack(
            [np.resize(self.group_of[m], width) for m in self.members]
        )
        # Each bucket as one (k, *shape) array in its accumulator dtype (f32 or
        # f64); k leaves of one shape.
        self.stacks = []
        for m in self.members:
            acc = jnp.promote_types(leaves[m[0]].dtype, jnp.float32)
            self.stacks.append(jnp.stack([leaves[i] for i in m]).astype(acc))

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

    def reduce(self, op, values) -> jax.Array:
        """Per-group reduction (`jnp.sum`, `jnp.max`, `jnp.min`) of `values`."""
        segment = {
            jnp.sum: jax.ops.segment_sum,
            jnp.max: jax.ops.segment_max,
            jnp.min: jax.ops.segment_min,
        }[op]
        per_bucket = [
            op(y, axis=tuple(range(1, y.ndim))).astype(jnp.float32) for y in values
        ]
        return self.per_group(per_bucket, segment)

    def lifted(self, per_group: jax.Array):
        """A per-group vector as one (k, 1, ..., 1) array per bucket, each a
        buffer of its own (`split_rows`): the buckets' kernels read no slice."""
        for members, x, row in zip(
            self.members, self.stacks, split_rows(per_group[self.padded]), strict=True
        ):
            lift = (len(members),) + (1,) * (x.ndim - 1)
            yield row[: len(members)].reshape(lift).astype(x.dtype)


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


def _careful_sums(plan: _Plan, statistic: str):
    """Per-group sum and sum of squares of (x * scale - shift), and 1 / scale.

    Each group is scaled by a power of two to a largest magnitude below 1, then
    ("std") centred on its scaled mean, or on its value if it is constant.
    """
    highs = plan.reduce(jnp.max, plan.stacks)
    lows = plan.reduce(jnp.min, plan.stacks)
    largest = jnp.maximum(jnp.abs(highs), jnp.abs(lows))
    _, exponent = jnp.frexp(largest)
    usable = jnp.isfinite(largest) & (largest > 0)
    exponent = jnp.where(usable, jnp.clip(exponent, -_MAX_EXPONENT, _MAX_EXPONENT), 0)
    scale = jnp.ldexp(jnp.ones_like(largest), -exponent)
    scaled = [x * s for x, s in zip(plan.stacks, plan.lifted(scale), strict=True)]
    if statistic == "std":
        mean = plan.reduce(jnp.sum, scaled) / plan.counts
        shift = jnp.where(highs == lows, highs * scale, mean)
        scaled = [x - m for x, m in zip(scaled, plan.lifted(shift), strict=True)]
    totals = plan.reduce(jnp.sum, scaled)
    squares = plan.reduce(jnp.sum, [y * y for y in scaled])
    return totals, squares, 1.0 / scale


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
    plan = _Plan(groups, _STACK_MAX_SIZE)

    def variance(totals, squares):
        mean_square = squares / plan.counts
        if statistic == "rms":
            return mean_square
        mean = totals / plan.counts
        return jnp.maximum(mean_square - mean * mean, 0.0)

    totals = plan.reduce(jnp.sum, plan.stacks)
    squares = plan.reduce(jnp.sum, [x * x for x in plan.stacks])
    mean_square = squares / plan.counts
    fast = variance(totals, squares)
    trusted = (
        jnp.isfinite(mean_square)
        & (mean_square >= _SAFE_MEAN_SQUARE)
        & (fast >= _SAFE_VARIANCE_RATIO * mean_square)
    )

    def careful():
        totals, squares, unscale = _careful_sums(_Plan(groups), statistic)
        return jnp.sqrt(variance(totals, squares)) * unscale

    def unless_zero():
        # Layers that are exactly zero (dead or frozen) have their statistic,
        # zero, from the fast sums: one more read, no careful path.
        largest = plan.reduce(jnp.max, [jnp.abs(x) for x in plan.stacks])
        zero = jnp.all(trusted | (largest == 0))
        return jax.lax.cond(zero, lambda: jnp.sqrt(fast), careful)

    return jax.lax.cond(jnp.all(trusted), lambda: jnp.sqrt(fast), unless_zero)
