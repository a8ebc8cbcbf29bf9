"""Finding the output (prediction) layer of a parameter tree.

`jax.tree_util` flattens dicts in sorted key order, so "the last layer" of a
flattened tree is often a hidden one (`hidden_9` sorts after `hidden_10` and
`head`). The output layer is therefore decided from signals that mean
something, and only when they agree:

* an explicit `output_layer=` (name, compiled regex or predicate);
* natural order, but only when all weighted layers are siblings of one
  sequence (`Dense_0` .. `Dense_11`, `layers/0` .. `layers/11`);
* the tree's own insertion order, when it has one (some dict in it is not
  sorted, as an eager Flax linen `init` returns it);
* a conventional head name (`head`, `output`, `out`, `logits`, ...).

No signal, or signals that disagree, raise a `ValueError` that lists the
layers. `find_output_layer` reads the answer off the forward computation.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.extend.core
import numpy as np

from stablegrad_optax import _layers

OutputLayer = str | re.Pattern | Callable[[Any], bool] | None

HEAD_NAMES = frozenset(
    {
        "head",
        "output",
        "outputs",
        "out",
        "output_layer",
        "out_layer",
        "readout",
        "logits",
        "classifier",
        "final",
        "final_layer",
        "last_layer",
        "fc_out",
        "prediction",
        "predictor",
    }
)

_HELP = (
    "Pass output_layer= (the exact layer name, a compiled regex that fullmatches "
    "one name, or a predicate on the layer's key path), or find it from the "
    "forward pass with stablegrad_optax.find_output_layer(apply_fn, params, "
    "*inputs)."
)


def validate_output_layer(output_layer: Any) -> None:
    if output_layer is None or callable(output_layer):
        return
    if not isinstance(output_layer, str | re.Pattern):
        raise ValueError(
            "output_layer must be None, a layer name (str), a compiled re.Pattern "
            f"or a callable on the layer's key path, got {output_layer!r}."
        )


def _names(layers: Sequence[_layers.Layer]) -> list[str]:
    return [layer.name for layer in layers]


def match_output_layer(
    layers: Sequence[_layers.Layer], output_layer: str | re.Pattern | Callable
) -> int:
    """Index of the one layer that `output_layer` names; `ValueError` otherwise."""
    if isinstance(output_layer, str):
        hits = [i for i, layer in enumerate(layers) if layer.name == output_layer]
    elif isinstance(output_layer, re.Pattern):
        hits = [
            i for i, layer in enumerate(layers) if output_layer.fullmatch(layer.name)
        ]
    else:
        hits = [i for i, layer in enumerate(layers) if output_layer(layer.path)]
    if len(hits) != 1:
        found = (
            "no layer"
            if not hits
            else f"{len(hits)} layers {_names([layers[i] for i in hits])}"
        )
        raise ValueError(
            f"output_layer={output_layer!r} matches {found}; it must match exactly "
            f"one of the weighted layers: {_names(layers)}."
        )
    return hits[0]


def _sequence_last(
    layers: Sequence[_layers.Layer], indices: Sequence[int]
) -> int | None:
    """The natural-order last of `indices` if they are one sibling sequence.

    Siblings of one sequence share their parent path and differ only in a
    trailing number: `Dense_0`..`Dense_11` or `layers/0`..`layers/11`.
    """
    stems = set()
    numbers = []
    for i in indices:
        parent, _, own = layers[i].name.rpartition("/")
        match = re.fullmatch(r"(.*?)(\d+)", own)
        if match is None:
            return None
        stems.add((parent, match.group(1)))
        numbers.append(int(match.group(2)))
    if len(stems) != 1 or len(set(numbers)) != len(numbers):
        return None
    return indices[int(np.argmax(numbers))]


def _insertion_order(tree: Any) -> tuple[list[str], bool]:
    """Leaf names in the tree's own dict order, and whether any dict is unsorted."""
    names: list[str] = []
    unsorted = False

    def walk(node: Any, prefix: tuple[Any, ...]) -> None:
        nonlocal unsorted
        if isinstance(node, Mapping):
            keys = list(node.keys())
            with contextlib.suppress(TypeError):
                unsorted |= keys != sorted(keys)
            for key in keys:
                walk(node[key], prefix + (jax.tree_util.DictKey(key),))
            return
        children, _ = jax.tree_util.tree_flatten_with_path(
            node, is_leaf=lambda x: x is not node and isinstance(x, Mapping)
        )
        for path, child in children:
            if isinstance(child, Mapping) and child is not node:
                walk(child, prefix + tuple(path))
            else:
                names.append(prefix + tuple(path))

    walk(tree, ())
    return names, unsorted


def detect_output_layer(
    layers: Sequence[_layers.Layer], tree: Any, group_by: _layers.GroupBy
) -> int:
    """Index of the output layer among `layers`, from the signals that apply."""
    if not layers:
        raise ValueError("detect_output_layer needs at least one weighted layer.")
    if len(layers) == 1:
        return 0
    signals: dict[str, int] = {}
    everything = list(range(len(layers)))
    natural = _sequence_last(layers, everything)
    if natural is not None:
        signals["natural order of one layer sequence"] = natural

    paths, unsorted = _insertion_order(tree)
    if unsorted:
        index = {layer.name: i for i, layer in enumerate(layers)}
        order = []
        for path in paths:
            name, _ = _layers.layer_key(_layers.strip_variable_value(path), group_by)
            if name in index:
                order.append(index[name])
        if order:
            signals["the tree's insertion order"] = order[-1]

    heads = [
        i
        for i, layer in enumerate(layers)
        if any(part.lower() in HEAD_NAMES for part in layer.name.split("/"))
    ]
    if len(heads) == 1:
        signals["head name"] = heads[0]
    elif heads:
        last = _sequence_last(layers, heads)
        if last is None:
            raise ValueError(
                "Several layers carry an output-like name "
                f"{_names([layers[i] for i in heads])}, so the output layer for "
                f"reference='output' is ambiguous. {_HELP}"
            )
        signals["head name"] = last

    if not signals:
        raise ValueError(
            "Cannot tell which layer is the output layer for reference='output': "
            "the layers are not one numbered sequence, the tree keeps no creation "
            "order (jit, tree_map and grad return sorted dicts) and no layer has an "
            f"output-like name. Weighted layers: {_names(layers)}. {_HELP}"
        )
    chosen = set(signals.values())
    if len(chosen) > 1:
        said = ", ".join(f"{k} says {layers[v].name!r}" for k, v in signals.items())
        raise ValueError(
            f"Signals for the output layer disagree ({said}). Weighted layers: "
            f"{_names(layers)}. {_HELP}"
        )
    return chosen.pop()


def resolve_output_layer(
    layers: Sequence[_layers.Layer],
    tree: Any,
    output_layer: OutputLayer,
    group_by: _layers.GroupBy,
) -> int:
    """Index of the reference layer: named by `output_layer`, else detected."""
    if output_layer is not None:
        return match_output_layer(layers, output_layer)
    return detect_output_layer(layers, tree, group_by)


def _sub_jaxpr(eqn: Any) -> Any:
    """The jaxpr a call-like equation runs with the same inputs and outputs."""
    for key in ("jaxpr", "call_jaxpr", "fun_jaxpr"):
        inner = eqn.params.get(key)
        inner = getattr(inner, "jaxpr", inner)
        if (
            isinstance(inner, jax.extend.core.Jaxpr)
            and len(inner.invars) == len(eqn.invars)
            and len(inner.outvars) == len(eqn.outvars)
        ):
            return inner
    return None


def _distances(jaxpr: Any, out_distances: Sequence[float]) -> dict[Any, float]:
    """Fewest operations from each variable of `jaxpr` to one of its outputs."""
    dist: dict[Any, float] = {}

    def lower(var: Any, d: float) -> None:
        if not isinstance(var, jax.extend.core.Literal):
            dist[var] = min(dist.get(var, np.inf), d)

    for var, d in zip(jaxpr.outvars, out_distances, strict=True):
        lower(var, d)
    for eqn in reversed(jaxpr.eqns):
        outs = [dist.get(v, np.inf) for v in eqn.outvars]
        if min(outs, default=np.inf) == np.inf:
            continue
        inner = _sub_jaxpr(eqn)
        if inner is None:
            ins = [min(outs) + 1] * len(eqn.invars)
        else:
            inner_dist = _distances(inner, outs)
            ins = [inner_dist.get(v, np.inf) for v in inner.invars]
        for var, d in zip(eqn.invars, ins, strict=True):
            lower(var, d)
    return dist


def find_output_layer(
    apply_fn: Callable[..., Any],
    params: Any,
    *args: Any,
    group_by: _layers.GroupBy = "parent",
    **kwargs: Any,
) -> str:
    """Names the layer whose weight acts nearest the output of `apply_fn`.

    Traces ``apply_fn(params, *args, **kwargs)`` to a jaxpr and counts, for each
    weight leaf (ndim >= 2), the fewest operations between it and any output.
    The layer with the nearest weight is the output layer. Nothing is computed.

    Args:
      apply_fn: the forward function, taking the parameter tree first.
      params: the parameter tree (as `stablegrad` will see it).
      *args: example inputs for `apply_fn`.
      group_by: as in `stablegrad`.
      **kwargs: keyword inputs for `apply_fn`.

    Returns:
      The output layer's name, to pass as ``stablegrad(output_layer=...)``.

    Raises:
      ValueError: if no weight reaches the output, or several are equally near.

    Examples:
      >>> import jax, jax.numpy as jnp, flax.linen as nn
      >>> import stablegrad_optax as sgo
      >>> class Net(nn.Module):
      ...   @nn.compact
      ...   def __call__(self, x):
      ...     x = nn.tanh(nn.Dense(8, name="z_hidden")(x))
      ...     return nn.Dense(1, name="a_out")(x)
      >>> x = jnp.ones((4, 2))
      >>> params = jax.jit(Net().init)(jax.random.key(0), x)["params"]
      >>> sgo.find_output_layer(lambda p, x: Net().apply({"params": p}, x),
      ...                       params, x)
      'a_out'
    """
    _layers.validate_group_by(group_by)
    with_path, treedef = jax.tree_util.tree_flatten_with_path(params)
    paths = [p for p, _ in with_path]
    leaves = [leaf for _, leaf in with_path]
    layers = _layers.group_layers(paths, leaves, group_by=group_by)
    if not layers:
        raise ValueError("find_output_layer: the parameter tree has no weight leaf.")

    def flat_apply(*flat):
        return apply_fn(jax.tree.unflatten(treedef, flat), *args, **kwargs)

    closed = jax.make_jaxpr(flat_apply)(*leaves)
    dist = _distances(closed.jaxpr, [0.0] * len(closed.jaxpr.outvars))
    invars = closed.jaxpr.invars
    nearest = [
        min(dist.get(invars[i], np.inf) for i in layer.weights) for layer in layers
    ]
    best = min(nearest)
    hits = [layers[i].name for i, d in enumerate(nearest) if d == best]
    if best == np.inf:
        raise ValueError(
            "find_output_layer: no weight reaches the output; layers: "
            f"{_names(layers)}."
        )
    if len(hits) > 1:
        raise ValueError(
            f"find_output_layer: layers {hits} are equally near the output; pass "
            "output_layer= to stablegrad explicitly."
        )
    return hits[0]
