"""Grouping pytree leaves into layers by key path."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

KeyPath = tuple[Any, ...]
GroupBy = str | Callable[[KeyPath], Hashable]

GROUP_BY_MODES = ("parent", "leaf")


def key_name(key: Any) -> str:
    """Returns the text of one key path entry (`DictKey`, `GetAttrKey`, ...)."""
    for attr in ("key", "name", "idx"):
        if hasattr(key, attr):
            return str(getattr(key, attr))
    return str(key)


def path_name(path: KeyPath) -> str:
    """Joins a key path with "/": `("params", "Dense_3")` -> `"params/Dense_3"`."""
    return "/".join(key_name(k) for k in path)


def natural_key(name: str) -> tuple[Any, ...]:
    """Sort key that orders numbers by value: `Dense_9` < `Dense_10`."""
    parts = re.split(r"(\d+)", name)
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts)


def strip_variable_value(path: KeyPath) -> KeyPath:
    """Drops the trailing `.value` that a Flax NNX `Variable` adds to a key path."""
    last = path[-1] if path else None
    if isinstance(last, jax.tree_util.GetAttrKey) and last.name == "value":
        return path[:-1]
    return path


def is_float(leaf: Any) -> bool:
    dtype = getattr(leaf, "dtype", None)
    if dtype is None:
        dtype = jnp.result_type(leaf)
    return bool(jnp.issubdtype(dtype, jnp.floating))


def is_weight(leaf: Any) -> bool:
    """A weight leaf is a non-empty floating array with at least two dimensions."""
    return is_float(leaf) and np.ndim(leaf) >= 2 and np.size(leaf) > 0


@dataclasses.dataclass(frozen=True)
class Layer:
    """One layer: its name, key path and the positions of its leaves.

    Attributes:
      name: the layer's key path joined with "/".
      path: the layer's key path (for a callable `group_by`, the key it returned).
      leaves: flat indices of every leaf the layer's factor multiplies.
      weights: flat indices of the weight leaves (ndim >= 2) its statistic reads.
    """

    name: str
    path: Any
    leaves: tuple[int, ...]
    weights: tuple[int, ...]


def validate_group_by(group_by: Any) -> None:
    if callable(group_by):
        return
    if not isinstance(group_by, str) or group_by not in GROUP_BY_MODES:
        raise ValueError(
            f"group_by must be one of {GROUP_BY_MODES} or a callable from a key "
            f"path to a layer key, got {group_by!r}."
        )


def layer_key(path: KeyPath, group_by: GroupBy) -> tuple[str, Any]:
    if group_by == "parent":
        return path_name(path[:-1]), path[:-1]
    if group_by == "leaf":
        return path_name(path), path
    key = group_by(path)
    if isinstance(key, str):
        return key, key
    if isinstance(key, tuple):
        return path_name(key), key
    return str(key), key


def mask_leaves(mask: Any, tree: Any, num_leaves: int) -> list[bool]:
    """Flattens an optax-style mask (a pytree prefix of `tree`, or a callable)."""
    if mask is None:
        return [True] * num_leaves
    mask_tree = mask(tree) if callable(mask) else mask
    try:
        spread = jax.tree.map(
            lambda m, sub: jax.tree.map(lambda _: bool(m), sub), mask_tree, tree
        )
    except (ValueError, TypeError) as error:
        raise ValueError(
            "mask must be a pytree of bools with the structure of the parameters "
            f"(or a prefix of it), or a callable returning one: {error}"
        ) from error
    flat = jax.tree.leaves(spread)
    if len(flat) != num_leaves:
        raise ValueError(
            f"mask does not match the tree: {len(flat)} mask entries for "
            f"{num_leaves} leaves."
        )
    return flat


def group_layers(
    paths: Sequence[KeyPath],
    leaves: Sequence[Any],
    *,
    group_by: GroupBy = "parent",
    mask: Sequence[bool] | None = None,
) -> tuple[Layer, ...]:
    """Groups flat leaves into the layers that hold at least one weight leaf.

    Only floating leaves selected by `mask` belong to a layer; layers are listed
    in the order their first leaf appears. Layers with no weight leaf are left
    out: nothing rescales them.

    Args:
      paths: key path of each leaf, as from `jax.tree_util.tree_flatten_with_path`.
      leaves: the leaves (arrays or anything with `shape` and `dtype`).
      group_by: "parent" (a layer is the parent path of a leaf), "leaf", or a
        callable from a key path to a layer key.
      mask: one bool per leaf; `False` leaves are left out.

    Returns:
      The weighted layers, in order.
    """
    names: dict[str, tuple[Any, list[int], list[int]]] = {}
    for index, (path, leaf) in enumerate(zip(paths, leaves, strict=True)):
        if (mask is not None and not mask[index]) or not is_float(leaf):
            continue
        name, layer_path = layer_key(strip_variable_value(path), group_by)
        _, members, weights = names.setdefault(name, (layer_path, [], []))
        members.append(index)
        if is_weight(leaf):
            weights.append(index)
    return tuple(
        Layer(name, layer_path, tuple(members), tuple(weights))
        for name, (layer_path, members, weights) in names.items()
        if weights
    )


def tree_layers(
    tree: Any, *, group_by: GroupBy = "parent", mask: Any = None
) -> tuple[list[Any], Any, tuple[Layer, ...]]:
    """Flattens `tree` and groups its leaves; returns (leaves, treedef, layers)."""
    with_path, treedef = jax.tree_util.tree_flatten_with_path(tree)
    paths = [p for p, _ in with_path]
    leaves = [leaf for _, leaf in with_path]
    selected = mask_leaves(mask, tree, len(leaves))
    layers = group_layers(paths, leaves, group_by=group_by, mask=selected)
    return leaves, treedef, layers
