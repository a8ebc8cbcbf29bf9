"""How overhead.py times its entries, and the update alone on trees shaped like
real models' parameters.

An *entry* is a closure ``run(n)`` that does ``n`` steps and blocks, carrying its
own state. `timed_section` times entries in interleaved rounds, by wall clock
and by the process's CPU time, counting XLA compilations in the rounds (there
must be none). Trees (`TREES`) are timed in ``update, compiled loop`` (``n``
updates in one jitted ``fori_loop``: no dispatch) and ``update, jit call``
(``jax.jit(tx.update)`` called from Python); rows marked ``[1e-30 grads]``
(mlp64) run StableGrad's careful path, still against adam on normal gradients.
"""

from __future__ import annotations

import argparse
import functools
import gc
import math
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

import stablegrad_optax as sgo
from stablegrad_optax import _statistic, models

import hlo_reads

BASELINE = "adam"
LEARNING_RATE = 1e-3
TINY_SCALE = 1e-30
REFERENCES = ("output", "mean", "geometric_mean", "median", "max")
ALONE = "stablegrad alone"
# A quick run (a smoke test: its times mean nothing) leaves out LLVM's
# optimizations, a third of XLA:CPU's compile time; the optimized HLO that
# `hlo_reads` reads comes before them, so its counts are the same.
QUICK_COMPILER_OPTIONS = {
    "xla_backend_optimization_level": 0,
    "xla_llvm_disable_expensive_passes": True,
}
COMPILER_OPTIONS: dict[str, Any] = {}  # of every compilation here
COMPILES = [0]  # XLA backend compilations so far (a retrace shows up as one)
TIMED_COMPILES = [0]  # compilations seen inside timed rounds


def _count_compiles(event: str, duration: float, **kwargs) -> None:
    if event == "/jax/core/compile/backend_compile_duration":
        COMPILES[0] += 1


jax.monitoring.register_event_duration_secs_listener(_count_compiles)


def jit(fun: Callable[..., Any], **kwargs: Any) -> Any:
    """`jax.jit` with `COMPILER_OPTIONS` (set by `overhead.main`: quick or not)."""
    return jax.jit(fun, compiler_options=dict(COMPILER_OPTIONS) or None, **kwargs)


def calibrate(run: Callable[[int], None], block_seconds: float, min_iters: int):
    """Steps per block so that `run` takes about `block_seconds` per block."""
    n = 1
    while True:
        start = time.perf_counter()
        run(n)
        elapsed = time.perf_counter() - start
        if elapsed > 0.05 or n >= 1 << 16:
            break
        n *= 4
    return max(min_iters, math.ceil(block_seconds * n / elapsed))


def _ratios(top: Sequence[float], bottom: Sequence[float], prefix: str = ""):
    """Median of the per-step times `top` over `bottom`'s, and the per-round range."""
    per_round = np.divide(top, bottom)
    return {
        prefix + "ratio": float(np.median(top) / np.median(bottom)),
        prefix + "round_ratio_min": float(per_round.min()),
        prefix + "round_ratio_max": float(per_round.max()),
    }


def timed_section(
    name: str,
    entries: dict[str, Callable[[int], None]],
    config: argparse.Namespace,
    steps_per_call: int = 1,
) -> dict[str, Any]:
    """Compiles and warms up every entry, gives each its own steps per round
    (about --block-seconds a block), then runs --rounds rounds of every entry in
    an order rotated by one each round. Per-step times divide by
    `steps_per_call` (the steps one call of `run` makes)."""
    start = time.perf_counter()
    for run in entries.values():
        run(2)
    compile_s = time.perf_counter() - start
    iters = {
        label: config.iters or calibrate(run, config.block_seconds, config.min_iters)
        for label, run in entries.items()
    }
    print(f"  {name}: {len(entries)} entries warmed up in {compile_s:.1f}s", flush=True)
    labels = list(entries)
    times = {label: ([], []) for label in labels}  # (wall clock, CPU) per step
    gc.collect()
    gc.disable()
    compiles = COMPILES[0]
    try:
        for r in range(config.rounds):
            for label in labels[r % len(labels) :] + labels[: r % len(labels)]:
                start, cpu_start = time.perf_counter(), time.process_time()
                entries[label](iters[label])
                wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
                steps = iters[label] * steps_per_call
                times[label][0].append(wall / steps)
                times[label][1].append(cpu / steps)
    finally:
        gc.enable()
        TIMED_COMPILES[0] += COMPILES[0] - compiles
    out = {}
    for label, (wall, cpu) in times.items():
        ratios = _ratios(wall, times[BASELINE][0])
        ratio, median = ratios.pop("ratio"), float(np.median(wall))
        print(f"    {label:44s} {median * 1e6:10.1f} us  {ratio:6.2f}x", flush=True)
        out[label] = {
            "iters": iters[label],
            "times_s": wall,
            "cpu_times_s": cpu,
            "median_s": median,
            "ratio_to_adam": ratio,
            **ratios,
        }
    return {"rounds": config.rounds, "entries": out, "compile_and_warmup_s": compile_s}


def ratio_between(section: dict[str, Any], top: str, bottom: str) -> dict[str, Any]:
    """Entry `top`'s median per-step time over `bottom`'s, with the per-round
    range, by wall clock and (``cpu_``) by the process's CPU time."""
    entries, out = section["entries"], {"of": top, "to": bottom}
    for prefix, key in (("", "times_s"), ("cpu_", "cpu_times_s")):
        out |= _ratios(entries[top][key], entries[bottom][key], prefix)
    return out


def optimizers() -> dict[str, optax.GradientTransformation]:
    """The timed optimizers; the first is the baseline."""
    adam = optax.adam(LEARNING_RATE)
    out = {"adam": adam}
    for ref in REFERENCES:
        label = "stablegrad+adam" if ref == "output" else f"stablegrad({ref})+adam"
        out[label] = optax.chain(sgo.stablegrad(ref), adam)
    out["adaptive_grad_clip+adam"] = optax.chain(optax.adaptive_grad_clip(0.01), adam)
    out["centralize+adam"] = optax.chain(optax.centralize(), adam)
    out["lars"] = optax.lars(LEARNING_RATE)
    out["adamp"] = sgo.adamp(LEARNING_RATE)
    return out


class Tree(NamedTuple):
    params: Any
    grads: Any
    description: str


def _random_tree(shapes: Any, seed: int, description: str) -> Tree:
    """Parameters ~ N(0, 0.05^2) and gradients ~ N(1e-4, 1e-3^2) of `shapes`,
    each of its leaf's dtype."""
    leaves, treedef = jax.tree.flatten(shapes)
    keys = jax.random.split(jax.random.key(seed), 2 * len(leaves))

    def draw(keys, scale, offset):
        normal = lambda k, x: jax.random.normal(k, x.shape, jnp.float32) * scale
        pairs = zip(keys, leaves, strict=True)
        drawn = [(normal(k, x) + offset).astype(x.dtype) for k, x in pairs]
        return jax.tree.unflatten(treedef, drawn)

    return Tree(draw(keys[::2], 0.05, 0.0), draw(keys[1::2], 1e-3, 1e-4), description)


def _model_tree(model, x, config, description: str, **kwargs) -> Tree:
    """A float32 tree shaped like `model`'s parameters."""
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), x, **kwargs))
    return _random_tree(shapes["params"], config.seed, description)


def resnet50_tree(config: argparse.Namespace) -> Tree:
    width = 8 if config.quick else 64
    model = models.ResNet50(norm="none", num_classes=1000, width=width)
    description = f"BN-free ResNet-50 (width {width}), float32"
    x = jnp.zeros((1, 224, 224, 3))
    return _model_tree(model, x, config, description, train=False)


def mlp_tree(config: argparse.Namespace) -> Tree:
    depth = 4 if config.quick else 64
    model = models.MLP(depth=depth, width=50)
    description = f"tanh MLP, {depth} hidden layers of width 50, float32"
    return _model_tree(model, jnp.zeros((1, 2)), config, description)


def _transformer(layers: int, d: int, vocab: int, dtype, full: bool) -> dict:
    """The shapes of a transformer's parameters (`layers` blocks of width `d`, MLP
    4 `d`); `full`: a bias in each norm and projection, and a final norm."""
    shape = functools.partial(jax.ShapeDtypeStruct, dtype=dtype)
    bias = lambda n: {"bias": shape((n,))} if full else {}
    dense = lambda n_in, n_out: {"kernel": shape((n_in, n_out)), **bias(n_out)}
    norm = {"scale": shape((d,)), **bias(d)}
    block = {
        "ln_attn": norm,
        **{name: dense(d, d) for name in ("query", "key", "value", "attn_out")},
        "ln_mlp": norm,
        "mlp_in": dense(d, 4 * d) | {"bias": shape((4 * d,))},
        "mlp_out": dense(4 * d, d) | {"bias": shape((d,))},
    }
    shapes = {f"block_{i}": block for i in range(layers)}
    shapes |= {"embed": {"embedding": shape((vocab, d))}, "head": dense(d, vocab)}
    return shapes | ({"ln_final": norm} if full else {})


def transformer_tree(config: argparse.Namespace) -> Tree:
    layers, d, vocab = (1, 32, 64) if config.quick else (6, 512, 8192)
    shapes = _transformer(layers, d, vocab, jnp.bfloat16, full=True)
    description = f"transformer, {layers} layers, d_model {d}, MLP {4 * d}, "
    description += f"vocabulary {vocab}, bfloat16"
    return _random_tree(shapes, config.seed, description)


def blocks_tree(config: argparse.Namespace) -> Tree:
    """48 transformer-shaped blocks of width 256, float32 (482 leaves)."""
    blocks, d, vocab = (2, 16, 32) if config.quick else (48, 256, 1024)
    description = f"{blocks} transformer-shaped blocks, d_model {d}, float32"
    shapes = _transformer(blocks, d, vocab, jnp.float32, full=False)
    return _random_tree(shapes, config.seed, description)


TREES: dict[str, Callable[[argparse.Namespace], Tree]] = {
    "resnet50": resnet50_tree,
    "mlp64": mlp_tree,
    "transformer_bf16": transformer_tree,
}


def update_loop(tx) -> Callable[..., Any]:
    """`n` updates inside one jitted `fori_loop`; returns (state, last updates)."""

    @jit
    def loop(grads, state, updates, params, n):
        def body(i, carry):
            # Step i scales the gradients and parameters by 1 + 1e-7 i, so XLA
            # cannot hoist work on them out of the loop, and writes them out
            # (the barrier) as a backward pass does, so that the multiply does
            # not fuse into some optimizers' kernels and not others'.
            scale = 1.0 + 1e-7 * i.astype(jnp.float32)
            g, p = jax.lax.optimization_barrier(
                jax.tree.map(lambda x: x * scale.astype(x.dtype), (grads, params))
            )
            updates, state = tx.update(g, carry[0], p)
            return state, updates

        return jax.lax.fori_loop(0, n, body, (state, updates))

    return loop


def update_loop_entry(tx, loop, grads, params) -> Callable[[int], None]:
    carry = [(tx.init(params), jax.tree.map(jnp.zeros_like, grads))]

    def run(n: int) -> None:
        carry[0] = jax.block_until_ready(loop(grads, *carry[0], params, n))

    return run


def update_call_entry(tx, grads, params) -> Callable[[int], None]:
    update = jit(tx.update, donate_argnums=1)
    carry = [tx.init(params)]

    def run(n: int) -> None:
        state = carry[0]
        for _ in range(n):
            updates, state = update(grads, state, params)
        carry[0] = jax.block_until_ready((updates, state))[1]

    return run


def fallback_check(tree: Tree, tiny: Any) -> dict[str, Any]:
    """Relative error of `tiny`'s stats (careful path) from 1e-30 x the gradients'."""
    tx = sgo.stablegrad()
    update = jit(tx.update)
    _, normal = update(tree.grads, tx.init(tree.params))
    _, small = update(tiny, tx.init(tree.params))
    ratio = np.asarray(small.stats, np.float64) / np.asarray(normal.stats, np.float64)
    error = float(np.max(np.abs(ratio / TINY_SCALE - 1)))
    return {"stats_ratio_over_1e-30_max_rel_err": error}


def inspect_hlo(tree: Tree, txs, loops) -> dict[str, Any]:
    """What XLA compiles: kernels per update, and what reads each gradient leaf
    (`loops`: the timed `update_loop`s of `txs`, already compiled)."""
    counts = {}
    zeros = jax.tree.map(jnp.zeros_like, tree.grads)
    for name, tx in txs.items():
        state = tx.init(tree.params)
        compiled = jit(tx.update).lower(tree.grads, state, tree.params).compile()
        counts[name] = hlo_reads.entry_counts(compiled.as_text())
        loop = loops[name].lower(tree.grads, state, zeros, tree.params, 1).compile()
        counts[name]["loop_body_fusions"] = hlo_reads.while_body_fusions(loop.as_text())
    tx = sgo.stablegrad()
    lowered = jit(tx.update, keep_unused=True).lower(
        tree.grads, tx.init(tree.params), tree.params
    )
    text = lowered.compile().as_text()
    leaves = jax.tree.leaves(tree.grads)
    reads = hlo_reads.leaf_reads(text, [x.shape for x in leaves])
    weights = [(r, x) for r, x in zip(reads, leaves, strict=True) if x.ndim >= 2]
    stack = _statistic._STACK_MAX_SIZE
    large = [r for r, x in weights if x.size > stack]
    small = [r for r, x in weights if x.size <= stack]
    # float32 arrays the size of a large bfloat16 leaf or more, written on the
    # fast path (None: no bfloat16 leaves).
    bf16 = any(x.dtype == jnp.bfloat16 for x in leaves)
    f32 = hlo_reads.float32_temporaries(text, stack + 1) if bf16 else None
    return {
        "entry_counts": counts,
        "large_leaves": len(large),
        "large_max_reductions": max((r["reductions"] for r in large), default=0),
        "large_max_elementwise": max((r["elementwise"] for r in large), default=0),
        "large_stacked": sum(r["stacked"] > 0 for r in large),
        "small_leaves": len(small),
        "small_stacked": sum(r["stacked"] > 0 for r in small),
        "small_max_reductions": max(
            (r["reductions"] + r["stack_reductions"] for r in small), default=0
        ),
        "float32_temporaries": f32,
    }


def benchmark_tree(name: str, config: argparse.Namespace) -> dict[str, Any]:
    """Both timings of the optimizers of --optimizers and `ALONE` on one tree."""
    tree = TREES[name](config)
    leaves = jax.tree.leaves(tree.params)
    num_leaves, num_params = len(leaves), int(sum(x.size for x in leaves))
    print(f"{name}: {tree.description}; {num_leaves} leaves, {num_params} parameters")
    txs = {k: tx for k, tx in optimizers().items() if k in config.optimizers}
    txs[ALONE] = sgo.stablegrad()
    g, p = tree.grads, tree.params
    loops = {label: update_loop(tx) for label, tx in txs.items()}
    loop_entries = {k: update_loop_entry(tx, loops[k], g, p) for k, tx in txs.items()}
    call_entries = {k: update_call_entry(tx, g, p) for k, tx in txs.items()}
    result = {
        "description": tree.description,
        "num_leaves": num_leaves,
        "num_params": num_params,
        "dtype": str(leaves[0].dtype),
    }
    if name == "mlp64":
        tiny = jax.tree.map(lambda g: g * TINY_SCALE, tree.grads)
        for label in [k for k in ("adam", "stablegrad+adam", ALONE) if k in txs]:
            loop_entries[label + " [1e-30 grads]"] = update_loop_entry(
                txs[label], loops[label], tiny, tree.params
            )
        result["fallback_check"] = fallback_check(tree, tiny)
    result["update_loop"] = timed_section("update, compiled loop", loop_entries, config)
    result["update_call"] = timed_section("update, jit call", call_entries, config)
    result["hlo"] = inspect_hlo(tree, txs, loops)
    return result


COMPILE_TREES = {"mlp64": mlp_tree, "blocks48": blocks_tree, "resnet50": resnet50_tree}
COMPILED = ("adam", "adaptive_grad_clip+adam", "stablegrad+adam")


def with_zero_layer(grads: Any) -> Any:
    """`grads` with its middle weight leaf (ndim >= 2) all zeros: a dead layer,
    on which StableGrad's fast sums fail (its zero check then runs)."""
    leaves, treedef = jax.tree.flatten(grads)
    weights = [i for i, x in enumerate(leaves) if x.ndim >= 2]
    middle = weights[len(weights) // 2]
    leaves[middle] = jnp.zeros_like(leaves[middle])
    return jax.tree.unflatten(treedef, leaves)


def compile_seconds(tx, grads, params) -> tuple[float, float]:
    """Seconds to trace and lower ``jax.jit(tx.update)``, and to compile it
    (JAX's in-memory caches cleared first: each round compiles anew)."""
    jax.clear_caches()
    start = time.perf_counter()
    lowered = jax.jit(tx.update).lower(grads, tx.init(params), params)
    lowered_at = time.perf_counter()
    lowered.compile()
    return lowered_at - start, time.perf_counter() - lowered_at


def compile_costs(config: argparse.Namespace) -> dict[str, Any]:
    """Per tree, with its gradients and with one zero layer: the seconds each of
    `COMPILED` takes to compile (--compile-rounds interleaved rounds) and the
    update's time (jit call and compiled loop, timed rounds)."""
    txs = {label: tx for label, tx in optimizers().items() if label in COMPILED}
    out = {}
    for name, make in COMPILE_TREES.items():
        tree = make(config)
        params = tree.params
        out[name] = {"description": tree.description}
        out[name]["num_leaves"] = len(jax.tree.leaves(params))
        zero = with_zero_layer(tree.grads)  # shares every other leaf
        for kind, grads in (("ordinary", tree.grads), ("one zero layer", zero)):
            seconds = {label: [] for label in txs}
            for r in range(config.compile_rounds):
                shift = r % len(COMPILED)
                for label in [*COMPILED[shift:], *COMPILED[:shift]]:
                    seconds[label].append(compile_seconds(txs[label], grads, params))
            calls = {k: update_call_entry(tx, grads, params) for k, tx in txs.items()}
            loops = {
                k: update_loop_entry(tx, update_loop(tx), grads, params)
                for k, tx in txs.items()
            }
            out[name][kind] = {
                "lower_s": {k: [s[0] for s in v] for k, v in seconds.items()},
                "compile_s": {k: [s[1] for s in v] for k, v in seconds.items()},
                "update_call": timed_section(
                    f"{name}, {kind}, jit call", calls, config
                ),
                "update_loop": timed_section(f"{name}, {kind}, loop", loops, config),
            }
            best = out[name][kind]["compile_s"].items()
            best = ", ".join(f"{k} {min(v):.2f}s" for k, v in best)
            print(f"  compile (min): {best}", flush=True)
    return out
