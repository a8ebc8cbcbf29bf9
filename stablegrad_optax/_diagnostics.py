"""Per-layer gradient statistics and their imbalance, for logging and plots."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax

from stablegrad_optax import _layers, _statistic


def layer_names(
    tree: Any, *, group_by: _layers.GroupBy = "parent", mask: Any = None
) -> list[str]:
    """Names of the layers `stablegrad` rescales, in the order of its state.

    Pair them with the state's vectors, e.g.
    ``dict(zip(layer_names(params), state.factors))``.

    Args:
      tree: a parameter or gradient tree.
      group_by: as in `stablegrad`.
      mask: as in `stablegrad`.

    Returns:
      The layer names (key paths joined with "/").

    Examples:
      >>> import jax.numpy as jnp, stablegrad_optax as sgo
      >>> sgo.layer_names({"Dense_0": {"kernel": jnp.ones((2, 3)),
      ...                              "bias": jnp.ones(3)},
      ...                  "scale": jnp.ones(3)})
      ['Dense_0']
    """
    _layers.validate_group_by(group_by)
    _, _, layers = _layers.tree_layers(tree, group_by=group_by, mask=mask)
    return [layer.name for layer in layers]


def layer_statistics(
    tree: Any,
    *,
    statistic: str = "std",
    group_by: _layers.GroupBy = "parent",
    mask: Any = None,
) -> dict[str, jax.Array]:
    """The statistic of each weighted layer of a gradient tree.

    The same statistic `stablegrad` computes (over each layer's weight leaves,
    in float32, safe from 1e-30 to 1e30); works under `jax.jit`.

    Args:
      tree: a gradient (or any) tree.
      statistic: "std" or "rms".
      group_by: as in `stablegrad`.
      mask: as in `stablegrad`.

    Returns:
      A dict from layer name to a float32 scalar.

    Examples:
      >>> import jax.numpy as jnp, stablegrad_optax as sgo
      >>> grads = {"a": {"w": jnp.array([[1.0, 3.0]])},
      ...          "b": {"w": jnp.array([[0.0, 0.5]])}}
      >>> {k: float(v) for k, v in sgo.layer_statistics(grads).items()}
      {'a': 1.0, 'b': 0.25}
    """
    _statistic.validate_statistic(statistic)
    _layers.validate_group_by(group_by)
    leaves, _, layers = _layers.tree_layers(tree, group_by=group_by, mask=mask)
    if not layers:
        return {}
    groups = [[leaves[i] for i in layer.weights] for layer in layers]
    stats = _statistic.group_statistics(groups, statistic)
    return {layer.name: stats[i] for i, layer in enumerate(layers)}


class Imbalance(NamedTuple):
    """How far apart the per-layer statistics are: largest / smallest."""

    ratio: float
    largest: str | None
    smallest: str | None
    largest_value: float
    smallest_value: float


def imbalance(stats: Mapping[str, jax.typing.ArrayLike]) -> Imbalance:
    """Summarises per-layer statistics: max/min ratio and which layers.

    Layers whose statistic is zero or not finite are left out; with none left,
    the ratio is NaN and the names are None. Runs on the host (not under jit).

    Args:
      stats: a dict from layer name to statistic, e.g. from `layer_statistics`.

    Returns:
      An `Imbalance`.

    Examples:
      >>> import stablegrad_optax as sgo
      >>> sgo.imbalance({"Dense_0": 2.0, "Dense_1": 0.5, "head": 1.0}).ratio
      4.0
    """
    values = {name: float(value) for name, value in stats.items()}
    usable = {k: v for k, v in values.items() if math.isfinite(v) and v > 0}
    if not usable:
        return Imbalance(math.nan, None, None, math.nan, math.nan)
    largest = max(usable, key=usable.get)
    smallest = min(usable, key=usable.get)
    return Imbalance(
        ratio=usable[largest] / usable[smallest],
        largest=largest,
        smallest=smallest,
        largest_value=usable[largest],
        smallest_value=usable[smallest],
    )
