"""Cost of StableGrad, as a ratio to optax.adam timed in the same process.

Trees (gradients and parameters drawn at random, shapes from real models):

* ``resnet50``: a BN-free ResNet-50's parameters (``models.ResNet50(norm="none",
  num_classes=1000)`` through ``jax.eval_shape``: 108 leaves, 25.5 M
  parameters), float32;
* ``mlp64``: a 64-hidden-layer tanh MLP of width 50 (130 leaves), float32;
* ``transformer_bf16``: a 6-layer transformer (d_model 512, MLP 2048,
  vocabulary 8192, untied output layer ``head``), bfloat16.

Optimizers: ``adam`` (the baseline every ratio divides by), ``stablegrad+adam``
for each reference mode, ``stablegrad`` alone, and the nearest peers
``adaptive_grad_clip(0.01)+adam``, ``centralize+adam``, ``lars`` and
``sgo.adamp``. Every learning rate is 1e-3 (timing only).

Timings, each in its own set of rounds:

* ``update, compiled loop``: the update repeated ``n`` times inside one jitted
  ``lax.fori_loop``: its own compute, no dispatch. Step ``i`` scales the
  gradients and parameters by ``1 + 1e-7 i`` and writes them out (behind an
  ``optimization_barrier``, as a backward pass writes its gradients) so that
  XLA cannot hoist gradient-only work out of the loop; every optimizer pays
  that same write.
* ``update, jit call``: ``jax.jit(tx.update)`` (state donated) called from
  Python on fixed gradients: dispatch and output allocation included.
* model steps: a full jitted training step, ``pinn32`` (Poisson, depth-32
  width-50 tanh MLP, 256 + 256 points, ``pinn.make_chunk`` of 5 steps) and,
  on a GPU or with ``--resnet-step``, ``resnet50_bs256`` (BN-free ResNet-50,
  CIFAR stem, 32x32 images, batch 256, cross-entropy).

Train steps, the paper's variant against the output reference (section
``train_steps``, one model at a time): ``adam`` (``jax.value_and_grad`` +
``optax.adam``), ``stablegrad(output)+adam`` (``jax.value_and_grad`` +
``stablegrad("output")`` + Adam) and ``stablegrad(prediction)+adam`` (the
paper's: ``sgo.prediction_value_and_grad`` + ``stablegrad("prediction")`` +
Adam, ``reference_scale`` from the step's own backward pass). Models:
``pinn32`` (as above, through ``pinn.make_chunk`` with
``prediction_reference="data"`` for the paper's variant, which also logs the
three readings of the reference) and ``resnet18_w16`` (BN-free ResNet-18 of
width 16, CIFAR stem, random 32x32x3 images shaped like digits32, batch 32, 10
classes, cross-entropy; the prediction is the logits; one jitted step per
call). Besides the ratios to adam it records the ratio of the paper's step to
the output-reference step (``prediction_over_output``: ratio of the medians,
range of the per-round ratios), by wall-clock time and by the process's CPU
time (``cpu_``: all its threads, which leaves out the time other processes
held the cores; every entry records ``cpu_times_s`` beside ``times_s``), and
what XLA's cost model says of each compiled call (flops, transcendentals, bytes
accessed: ``xla_cost_per_call``, and their ratios).

Rows marked ``[1e-30 grads]`` (mlp64) take gradients scaled by 1e-30, where
StableGrad's ``lax.cond`` runs its careful path; their ratio is still to adam
on normal gradients.

Method: everything is compiled and warmed up first; each entry's steps per
round are calibrated so that a block takes about ``--block-seconds``; then
``--rounds`` rounds run every entry once, in an order rotated by one every
round. Reported: the median per-step time, its ratio to adam's median, and
the range of the per-round ratios. A listener counts XLA compilations during
the timed rounds (there must be none: no retrace between steps).

It also reads the optimized HLO of ``jax.jit(sgo.stablegrad().update)`` on
each tree (`hlo_reads`): per gradient leaf, the reductions and other kernels
that read it, and float32 arrays written from bfloat16 gradients.

Outputs: ``overhead_<platform>.json`` (raw) in ``--outdir`` (default
``benchmarks/results``); ``overhead_report.py`` makes the tables and the
README section from it. ``--only train-steps`` times that section alone and
writes it into the JSON already there, keeping the other sections; each
section says which command, date, device and CPU affinity made it (the
top-level ``meta`` for ``trees`` and ``model_steps``, ``train_steps.meta`` for
the train steps).

Usage::

  python benchmarks/overhead.py                           # ~20 min on 2 cores
  python benchmarks/overhead.py --only train-steps        # ~3 min on 1 core
  python benchmarks/overhead.py --quick --outdir /tmp/oh  # smoke run
"""

from __future__ import annotations

import argparse
import datetime
import functools
import gc
import json
import math
import os
import pathlib
import platform
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import jaxlib
import numpy as np
import optax

import stablegrad_optax as sgo
from stablegrad_optax import _statistic, models, pinn

import hlo_reads

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "examples"))
from common import name_list, positive, run_metadata  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parent.parent
LEARNING_RATE = 1e-3
BASELINE = "adam"
TINY_SCALE = 1e-30
TINY_SUFFIX = " [1e-30 grads]"
REFERENCES = ("output", "mean", "geometric_mean", "median", "max")
ALONE = "stablegrad alone"


def optimizers() -> dict[str, optax.GradientTransformation]:
    """The timed optimizers; the first is the baseline."""
    lr = LEARNING_RATE
    out = {"adam": optax.adam(lr)}
    for ref in REFERENCES:
        label = "stablegrad+adam" if ref == "output" else f"stablegrad({ref})+adam"
        out[label] = optax.chain(sgo.stablegrad(ref), optax.adam(lr))
    out["adaptive_grad_clip+adam"] = optax.chain(
        optax.adaptive_grad_clip(0.01), optax.adam(lr)
    )
    out["centralize+adam"] = optax.chain(optax.centralize(), optax.adam(lr))
    out["lars"] = optax.lars(lr)
    out["adamp"] = sgo.adamp(lr)
    return out


STEP_OPTIMIZERS = (
    "adam",
    "stablegrad+adam",
    "stablegrad(geometric_mean)+adam",
    "adaptive_grad_clip+adam",
    "lars",
)


# ----------------------------------------------------------------------------
# Trees.


class Tree(NamedTuple):
    params: Any
    grads: Any
    description: str


def _random_tree(shapes: Any, seed: int, dtype) -> tuple[Any, Any]:
    """Parameters ~ N(0, 0.05^2) and gradients ~ N(1e-4, 1e-3^2) of `shapes`."""
    leaves, treedef = jax.tree.flatten(shapes)
    keys = jax.random.split(jax.random.key(seed), 2 * len(leaves))

    def draw(key, leaf, scale, offset):
        x = jax.random.normal(key, leaf.shape, jnp.float32) * scale + offset
        return x.astype(dtype)

    params = [draw(k, x, 0.05, 0.0) for k, x in zip(keys[::2], leaves, strict=True)]
    grads = [draw(k, x, 1e-3, 1e-4) for k, x in zip(keys[1::2], leaves, strict=True)]
    return jax.tree.unflatten(treedef, params), jax.tree.unflatten(treedef, grads)


def resnet50_tree(config: argparse.Namespace) -> Tree:
    width = 8 if config.quick else 64
    model = models.ResNet50(norm="none", num_classes=1000, width=width)
    shapes = jax.eval_shape(
        lambda: model.init(jax.random.key(0), jnp.zeros((1, 224, 224, 3)), train=False)
    )["params"]
    params, grads = _random_tree(shapes, config.seed, jnp.float32)
    return Tree(params, grads, f"BN-free ResNet-50 (width {width}), float32")


def mlp_tree(config: argparse.Namespace) -> Tree:
    depth = 4 if config.quick else 64
    model = models.MLP(depth=depth, width=50)
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 2))))
    params, grads = _random_tree(shapes["params"], config.seed, jnp.float32)
    return Tree(params, grads, f"tanh MLP, {depth} hidden layers of width 50, float32")


def transformer_tree(config: argparse.Namespace) -> Tree:
    layers, d, vocab = (1, 32, 64) if config.quick else (6, 512, 8192)

    def dense(n_in, n_out):
        return {"kernel": (n_in, n_out), "bias": (n_out,)}

    def norm():
        return {"scale": (d,), "bias": (d,)}

    shapes: dict[str, Any] = {"embed": {"embedding": (vocab, d)}}
    for i in range(layers):
        shapes[f"block_{i}"] = {
            "ln_attn": norm(),
            **{name: dense(d, d) for name in ("query", "key", "value", "attn_out")},
            "ln_mlp": norm(),
            "mlp_in": dense(d, 4 * d),
            "mlp_out": dense(4 * d, d),
        }
    shapes["ln_final"] = norm()
    shapes["head"] = dense(d, vocab)
    shapes = jax.tree.map(
        lambda s: jax.ShapeDtypeStruct(s, jnp.bfloat16),
        shapes,
        is_leaf=lambda x: isinstance(x, tuple),
    )
    params, grads = _random_tree(shapes, config.seed, jnp.bfloat16)
    return Tree(
        params,
        grads,
        f"transformer, {layers} layers, d_model {d}, MLP {4 * d}, vocabulary "
        f"{vocab}, bfloat16",
    )


TREES: dict[str, Callable[[argparse.Namespace], Tree]] = {
    "resnet50": resnet50_tree,
    "mlp64": mlp_tree,
    "transformer_bf16": transformer_tree,
}


# Options of every compilation here. A quick run (a smoke test: its times
# mean nothing) leaves out LLVM's optimizations, which take about a third of
# XLA:CPU's compile time; the optimized HLO that `hlo_reads` reads comes
# before them, so its counts are the same.
QUICK_COMPILER_OPTIONS = {
    "xla_backend_optimization_level": 0,
    "xla_llvm_disable_expensive_passes": True,
}
COMPILER_OPTIONS: dict[str, Any] = {}


def jit(fun: Callable[..., Any], **kwargs: Any) -> Any:
    """`jax.jit` with `COMPILER_OPTIONS` (set by `main`: quick or not)."""
    return jax.jit(fun, compiler_options=dict(COMPILER_OPTIONS) or None, **kwargs)


def tree_size(tree: Any) -> tuple[int, int]:
    leaves = jax.tree.leaves(tree)
    return len(leaves), int(sum(x.size for x in leaves))


# ----------------------------------------------------------------------------
# Timed entries. Each is a closure `run(n)` that does n steps and blocks; it
# carries its own state from call to call.


def xla_cost(lowered) -> dict[str, float]:
    """XLA's cost model of one compiled call (after a run: no new compile)."""
    cost = lowered.compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    keys = ("flops", "transcendentals", "bytes accessed")
    return {key.replace(" ", "_"): float(cost[key]) for key in keys}


def update_loop(tx) -> Callable[..., Any]:
    """`n` updates inside one jitted `fori_loop`; returns (state, last updates)."""

    @jit
    def loop(grads, state, updates, params, n):
        def body(i, carry):
            # Gradients and parameters scaled by 1 + 1e-7 i differ at every
            # step, so XLA cannot hoist work that depends on them alone out of
            # the loop. The barrier writes them out, as a backward pass does:
            # otherwise the multiply fuses into the update's elementwise
            # kernels but not into library reductions (XLA:CPU's YNN), which
            # would charge StableGrad alone for a copy. The updates are carried
            # out of the loop so that they stay live.
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
        jax.block_until_ready((updates, state))
        carry[0] = state

    return run


def pinn_step_entry(
    tx, config: argparse.Namespace, prediction_reference: str | None = None
) -> Callable[[int], None]:
    """`n` chunks of ``--chunk`` jitted PINN training steps (Poisson, depth 32).

    `prediction_reference` goes to `pinn.make_chunk` (``"data"`` for
    ``stablegrad("prediction")``).
    """
    problem = pinn.get_problem("poisson")
    depth = 2 if config.quick else 32
    model = models.MLP(
        depth=depth, width=50, input_bounds=(problem.lower, problem.upper)
    )
    params = model.init(jax.random.key(config.seed), jnp.zeros((1, problem.dim)))
    points = 16 if config.quick else 256
    chunk = jit(
        pinn.make_chunk(
            problem,
            model.apply,
            tx,
            num_interior=points,
            num_boundary=points,
            length=config.chunk,
            prediction_reference=prediction_reference,
            # The three readings, as the published step was measured.
            log_readings=prediction_reference is not None,
        ),
        donate_argnums=0,
    )
    key = jax.random.key(config.seed + 1)
    carry = [pinn.TrainState(params, tx.init(params), key, jnp.zeros([], jnp.int32))]

    def run(n: int) -> None:
        state = carry[0]
        for _ in range(n):
            state, logs, *_ = chunk(state)
        carry[0] = jax.block_until_ready(state)
        run.final_loss = float(logs["loss"][-1])

    run.xla_cost = lambda: xla_cost(chunk.lower(carry[0]))
    return run


def resnet_steps(
    model, batch: int, seed: int, tx, prediction: bool = False
) -> Callable[[int], None]:
    """`run(n)`: `n` jitted training steps of a BN-free ResNet on one random
    batch of 32x32 images (cross-entropy on the logits, which are the
    prediction). With `prediction`, the gradients and ``reference_scale`` come
    from `sgo.prediction_value_and_grad`; otherwise from `jax.value_and_grad`
    of the same loss. ``run.final_loss`` and ``run.xla_cost()`` describe it.
    """
    kx, ky, kp = jax.random.split(jax.random.key(seed), 3)
    images = jax.random.normal(kx, (batch, 32, 32, 3))
    labels = jax.random.randint(ky, (batch,), 0, 10)
    params = model.init(kp, images[:1])["params"]

    def predict(p, x, y):
        del y
        return model.apply({"params": p}, x)

    def loss(logits, x, y):
        del x
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    if prediction:
        grad_fn = sgo.prediction_value_and_grad(predict, loss)
    else:
        composed = jax.value_and_grad(lambda p, x, y: loss(predict(p, x, y), x, y))
        grad_fn = lambda p, x, y: (*composed(p, x, y), None)

    @functools.partial(jit, donate_argnums=(0, 1))
    def step(params, opt_state):
        value, grads, scale = grad_fn(params, images, labels)
        extra = {} if scale is None else {"reference_scale": scale}
        updates, opt_state = tx.update(grads, opt_state, params, **extra)
        return optax.apply_updates(params, updates), opt_state, value

    carry = [params, tx.init(params)]

    def run(n: int) -> None:
        params, opt_state = carry
        for _ in range(n):
            params, opt_state, loss_value = step(params, opt_state)
        carry[:] = jax.block_until_ready([params, opt_state])
        run.final_loss = float(loss_value)

    run.xla_cost = lambda: xla_cost(step.lower(*carry))
    return run


def resnet_step_entry(tx, config: argparse.Namespace) -> Callable[[int], None]:
    """`n` jitted training steps of a BN-free ResNet-50 (CIFAR stem)."""
    width, batch = (8, 4) if config.quick else (64, config.resnet_batch)
    model = models.ResNet50(norm="none", num_classes=10, width=width, stem="cifar")
    return resnet_steps(model, batch, config.seed, tx)


MODEL_STEPS = {"pinn32": pinn_step_entry, "resnet50_bs256": resnet_step_entry}


# ----------------------------------------------------------------------------
# Train steps: the paper's variant against the output reference.

PAPER, OUTPUT = "stablegrad(prediction)+adam", "stablegrad(output)+adam"


def train_step_optimizers() -> dict[str, tuple[optax.GradientTransformation, bool]]:
    """{label: (tx, whether the step passes the prediction reference)}."""
    lr = LEARNING_RATE
    return {
        "adam": (optax.adam(lr), False),
        OUTPUT: (optax.chain(sgo.stablegrad("output"), optax.adam(lr)), False),
        PAPER: (optax.chain(sgo.stablegrad("prediction"), optax.adam(lr)), True),
    }


def pinn_train_step_entry(tx, prediction: bool, config: argparse.Namespace):
    """`pinn.make_chunk` steps, with ``prediction_reference="data"`` if `prediction`."""
    return pinn_step_entry(tx, config, "data" if prediction else None)


def resnet18_train_step_entry(tx, prediction: bool, config: argparse.Namespace):
    """`n` jitted steps of a BN-free ResNet-18 on digits32-sized images."""
    width, batch = (2, 2) if config.quick else (16, 32)
    model = models.ResNet18(norm="none", num_classes=10, width=width, stem="cifar")
    return resnet_steps(model, batch, config.seed, tx, prediction)


TRAIN_STEPS = {
    "pinn32": pinn_train_step_entry,
    "resnet18_w16": resnet18_train_step_entry,
}


def steps_per_call(name: str, config: argparse.Namespace) -> int:
    """Training steps one call of a model step's `run` makes."""
    return config.chunk if name == "pinn32" else 1


# ----------------------------------------------------------------------------
# Timing.


class CompileCounter:
    """Counts XLA backend compilations (a retrace shows up as one)."""

    def __init__(self):
        self.count = 0
        jax.monitoring.register_event_duration_secs_listener(self._listen)

    def _listen(self, event: str, duration: float, **kwargs) -> None:
        del duration, kwargs
        if event == "/jax/core/compile/backend_compile_duration":
            self.count += 1


COMPILES = CompileCounter()
TIMED_COMPILES = [0]  # compilations seen inside timed rounds


def calibrate(run: Callable[[int], None], block_seconds: float, min_iters: int):
    """Steps per block so that `run` takes about `block_seconds` per block."""
    n, elapsed = 1, 0.0
    while True:
        start = time.perf_counter()
        run(n)
        elapsed = time.perf_counter() - start
        if elapsed > 0.05 or n >= 1 << 16:
            break
        n *= 4
    return max(min_iters, math.ceil(block_seconds * n / elapsed))


def time_rounds(
    entries: dict[str, Callable[[int], None]],
    rounds: int,
    iters: dict[str, int],
    baseline: str = BASELINE,
    steps_per_call: int = 1,
) -> dict[str, Any]:
    """Runs each entry `iters[label]` steps per round, rotating the order.

    Per-step times divide by `steps_per_call` (steps each call of `run` makes).
    Counts the XLA compilations during the rounds into `TIMED_COMPILES`.
    """
    labels = list(entries)
    times: dict[str, list[float]] = {label: [] for label in labels}
    cpu_times: dict[str, list[float]] = {label: [] for label in labels}
    gc.collect()
    gc.disable()
    compiles = COMPILES.count
    try:
        for r in range(rounds):
            shift = r % len(labels)
            for label in labels[shift:] + labels[:shift]:
                start, cpu_start = time.perf_counter(), time.process_time()
                entries[label](iters[label])
                elapsed = time.perf_counter() - start
                cpu = time.process_time() - cpu_start
                times[label].append(elapsed / (iters[label] * steps_per_call))
                cpu_times[label].append(cpu / (iters[label] * steps_per_call))
    finally:
        gc.enable()
        TIMED_COMPILES[0] += COMPILES.count - compiles
    base = np.asarray(times[baseline])
    base_median = float(np.median(base))
    out = {}
    for label in labels:
        t = np.asarray(times[label])
        per_round = t / base
        out[label] = {
            "iters": iters[label],
            "times_s": t.tolist(),
            # CPU time of the whole process (all threads) per step: leaves
            # out the time other processes held the cores.
            "cpu_times_s": cpu_times[label],
            "median_s": float(np.median(t)),
            "ratio_to_adam": float(np.median(t)) / base_median,
            "round_ratio_min": float(per_round.min()),
            "round_ratio_max": float(per_round.max()),
        }
    return {"rounds": rounds, "entries": out}


def timed_section(
    name: str,
    entries: dict[str, Callable[[int], None]],
    config: argparse.Namespace,
    steps_per_call: int = 1,
) -> dict[str, Any]:
    """Compiles, warms up and calibrates every entry, then times them in rounds.

    Each entry gets its own steps per round (about --block-seconds a block),
    so a slow entry does not make the rounds long; ratios use per-step times.
    """
    start = time.perf_counter()
    for run in entries.values():
        run(2)
    compile_s = time.perf_counter() - start
    iters = {}
    for label, run in entries.items():
        iters[label] = config.iters or calibrate(
            run, config.block_seconds, config.min_iters
        )
    print(
        f"  {name}: compiled and warmed up {len(entries)} entries in "
        f"{compile_s:.1f}s; {config.rounds} rounds of "
        f"{min(iters.values())}-{max(iters.values())} steps",
        flush=True,
    )
    result = time_rounds(entries, config.rounds, iters, steps_per_call=steps_per_call)
    result["compile_and_warmup_s"] = compile_s
    for label, entry in result["entries"].items():
        print(
            f"    {label:44s} {entry['median_s'] * 1e6:10.1f} us  "
            f"{entry['ratio_to_adam']:6.2f}x",
            flush=True,
        )
    return result


def fallback_check(tree: Tree) -> dict[str, Any]:
    """1e-30 gradients take StableGrad's careful path and give 1e-30 x the stats."""
    tiny = jax.tree.map(lambda g: g * TINY_SCALE, tree.grads)
    tx = sgo.stablegrad()
    update = jit(tx.update)
    _, normal = update(tree.grads, tx.init(tree.params))
    _, small = update(tiny, tx.init(tree.params))
    ratio = np.asarray(small.stats, np.float64) / np.asarray(normal.stats, np.float64)
    return {
        "stats_ratio_over_1e-30_max_rel_err": float(np.max(np.abs(ratio / 1e-30 - 1))),
    }


def inspect_hlo(tree: Tree, txs, loops) -> dict[str, Any]:
    """What XLA compiles: fusions per update, and what reads each gradient leaf.

    `loops` are the timed `update_loop`s of `txs`, already compiled on these
    shapes: lowered again, they give the same executables (no new compile).
    """
    counts = {}
    for name, tx in txs.items():
        compiled = jit(tx.update).lower(tree.grads, tx.init(tree.params), tree.params)
        counts[name] = hlo_reads.entry_counts(compiled.compile().as_text())
        zeros = jax.tree.map(jnp.zeros_like, tree.grads)
        loop = loops[name].lower(
            tree.grads, tx.init(tree.params), zeros, tree.params, 1
        )
        counts[name]["loop_body_fusions"] = hlo_reads.while_body_fusions(
            loop.compile().as_text()
        )
    tx = sgo.stablegrad()
    text = (
        jit(tx.update, keep_unused=True)
        .lower(tree.grads, tx.init(tree.params), tree.params)
        .compile()
        .as_text()
    )
    leaves = jax.tree.leaves(tree.grads)
    reads = hlo_reads.leaf_reads(text, [x.shape for x in leaves])
    weights = [(r, x) for r, x in zip(reads, leaves, strict=True) if x.ndim >= 2]
    large = [r for r, x in weights if x.size > _statistic._STACK_MAX_SIZE]
    small = [r for r, x in weights if x.size <= _statistic._STACK_MAX_SIZE]
    bf16 = [x for x in leaves if x.dtype == jnp.bfloat16]
    return {
        "backend": jax.default_backend(),
        "entry_counts": counts,
        "weight_leaves": len(weights),
        "large_leaves": len(large),
        "large_max_reductions": max((r["reductions"] for r in large), default=0),
        "large_max_elementwise": max((r["elementwise"] for r in large), default=0),
        "large_stacked": sum(r["stacked"] > 0 for r in large),
        "small_leaves": len(small),
        "small_stacked": sum(r["stacked"] > 0 for r in small),
        "small_max_reductions": max(
            (r["reductions"] + r["stack_reductions"] for r in small), default=0
        ),
        "conditionals": counts[ALONE]["conditionals"],
        # float32 arrays the size of a large bfloat16 leaf or more, written on
        # the fast path (None: no bfloat16 leaves).
        "float32_temporaries": hlo_reads.float32_temporaries(
            text, _statistic._STACK_MAX_SIZE + 1
        )
        if bf16
        else None,
    }


def selected(config: argparse.Namespace) -> dict[str, optax.GradientTransformation]:
    """The optimizers of --optimizers, then stablegrad alone."""
    txs = optimizers()
    return {
        **{k: txs[k] for k in txs if k in config.optimizers},
        ALONE: sgo.stablegrad(),
    }


def benchmark_tree(name: str, config: argparse.Namespace) -> dict[str, Any]:
    tree = TREES[name](config)
    num_leaves, num_params = tree_size(tree.params)
    print(f"{name}: {tree.description}; {num_leaves} leaves, {num_params} parameters")
    txs = selected(config)
    loops = {label: update_loop(tx) for label, tx in txs.items()}
    loop_entries = {
        label: update_loop_entry(tx, loops[label], tree.grads, tree.params)
        for label, tx in txs.items()
    }
    call_entries = {
        label: update_call_entry(tx, tree.grads, tree.params)
        for label, tx in txs.items()
    }
    result = {
        "description": tree.description,
        "num_leaves": num_leaves,
        "num_params": num_params,
        "dtype": str(jax.tree.leaves(tree.params)[0].dtype),
    }
    if name == "mlp64":
        tiny = jax.tree.map(lambda g: g * TINY_SCALE, tree.grads)
        for label in [k for k in ("adam", "stablegrad+adam", ALONE) if k in txs]:
            loop_entries[label + TINY_SUFFIX] = update_loop_entry(
                txs[label], loops[label], tiny, tree.params
            )
        result["fallback_check"] = fallback_check(tree)
    result["update_loop"] = timed_section("update, compiled loop", loop_entries, config)
    result["update_call"] = timed_section("update, jit call", call_entries, config)
    result["hlo"] = inspect_hlo(tree, txs, loops)
    return result


def benchmark_model_step(name: str, config: argparse.Namespace) -> dict[str, Any]:
    txs = optimizers()
    labels = [k for k in STEP_OPTIMIZERS if k in config.optimizers]
    entries = {label: MODEL_STEPS[name](txs[label], config) for label in labels}
    print(f"{name}: full training step", flush=True)
    result = timed_section("train step", entries, config, steps_per_call(name, config))
    result["final_loss"] = {label: run.final_loss for label, run in entries.items()}
    return result


def ratio_between(section: dict[str, Any], top: str, bottom: str) -> dict[str, Any]:
    """Entry `top`'s median per-step time over `bottom`'s, and the per-round range.

    The same again (``cpu_``) for the process's CPU time per step.
    """
    out: dict[str, Any] = {"of": top, "to": bottom}
    for prefix, key in (("", "times_s"), ("cpu_", "cpu_times_s")):
        a = np.asarray(section["entries"][top][key])
        b = np.asarray(section["entries"][bottom][key])
        per_round = a / b
        out[prefix + "ratio"] = float(np.median(a) / np.median(b))
        out[prefix + "round_ratio_min"] = float(per_round.min())
        out[prefix + "round_ratio_max"] = float(per_round.max())
    return out


def benchmark_train_step(name: str, config: argparse.Namespace) -> dict[str, Any]:
    """The paper's variant, the output reference and adam, in one set of rounds."""
    entries = {
        label: TRAIN_STEPS[name](tx, prediction, config)
        for label, (tx, prediction) in train_step_optimizers().items()
    }
    print(f"{name}: train step, the paper's variant against the output reference")
    result = timed_section("train step", entries, config, steps_per_call(name, config))
    result["prediction_over_output"] = ratio = ratio_between(result, PAPER, OUTPUT)
    result["final_loss"] = {label: run.final_loss for label, run in entries.items()}
    # What XLA's cost model says each compiled call does (independent of
    # whatever else runs on the machine), and the paper's over the output's.
    cost = {label: run.xla_cost() for label, run in entries.items()}
    result["xla_cost_per_call"] = cost
    ratio["xla_cost"] = {k: cost[PAPER][k] / cost[OUTPUT][k] for k in cost[PAPER]}
    print(
        f"    {PAPER} / {OUTPUT}: {ratio['ratio']:.3f}x "
        f"({ratio['round_ratio_min']:.3f}-{ratio['round_ratio_max']:.3f}); CPU "
        f"time {ratio['cpu_ratio']:.3f}x ({ratio['cpu_round_ratio_min']:.3f}-"
        f"{ratio['cpu_round_ratio_max']:.3f}); XLA cost model "
        + ", ".join(f"{k} {v:.5f}x" for k, v in ratio["xla_cost"].items()),
        flush=True,
    )
    return result


def train_steps_section(config: argparse.Namespace) -> dict[str, Any]:
    """The `train_steps` section of the JSON, with its own provenance."""
    start, compiles = time.perf_counter(), TIMED_COMPILES[0]
    meta = overhead_metadata(config)
    models_ = {name: benchmark_train_step(name, config) for name in config.train_steps}
    return {
        "meta": meta,
        "config": {
            k: getattr(config, k)
            for k in ("rounds", "block_seconds", "min_iters", "iters", "chunk", "seed")
        },
        "models": models_,
        "compiles_during_timing": TIMED_COMPILES[0] - compiles,
        "wall_time_s": time.perf_counter() - start,
    }


# ----------------------------------------------------------------------------
# Command line.


def overhead_metadata(config: argparse.Namespace) -> dict[str, Any]:
    """`run_metadata`, with the time of day, the note and the CPU affinity."""
    return run_metadata(
        note=config.note,
        jax_device=str(jax.devices()[0]),
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        python=platform.python_version(),
        jaxlib=jaxlib.__version__,
        # The cores this process may run on (taskset); XLA:CPU sizes its
        # thread pool to them.
        cpu_affinity=sorted(os.sched_getaffinity(0)),
        cpu_count=os.cpu_count(),
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--trees", type=name_list(tuple(TREES), "tree"), default=list(TREES)
    )
    parser.add_argument(
        "--model-steps",
        type=name_list(tuple(MODEL_STEPS), "model step"),
        default=None,
        help="default: pinn32, and resnet50_bs256 on a GPU",
    )
    parser.add_argument(
        "--optimizers",
        type=name_list(tuple(optimizers()), "optimizer"),
        default=list(optimizers()),
        help="comma-separated; adam (the baseline) is always included",
    )
    parser.add_argument(
        "--train-steps",
        type=name_list(tuple(TRAIN_STEPS), "train step"),
        default=list(TRAIN_STEPS),
        help="models of the train-steps section (the paper's variant)",
    )
    parser.add_argument(
        "--only",
        choices=("train-steps",),
        default=None,
        help="time only this section and write it into the JSON already in "
        "--outdir, keeping the other sections",
    )
    parser.add_argument(
        "--note",
        default=None,
        help="how the machine was set up (e.g. what else ran), kept in the JSON",
    )
    parser.add_argument("--resnet-batch", type=positive(int), default=256)
    parser.add_argument(
        "--chunk", type=positive(int), default=5, help="PINN steps per call"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=positive(int), default=9)
    parser.add_argument(
        "--block-seconds",
        type=positive(float),
        default=0.3,
        help="target time of one entry's block of steps (sets the steps per round)",
    )
    parser.add_argument("--min-iters", type=positive(int), default=3)
    parser.add_argument(
        "--iters",
        type=positive(int),
        default=None,
        help="fixed steps per round (no calibration)",
    )
    parser.add_argument("--outdir", default=None, help="default: benchmarks/results")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: tiny trees and models, 2 rounds x 2 steps, LLVM optimizations "
        "off; needs --outdir",
    )
    config = parser.parse_args(argv)
    if config.quick:
        if config.outdir is None:
            parser.error("--quick needs --outdir (to keep the real results)")
        config.rounds, config.iters, config.chunk = 2, 2, 2
    if BASELINE not in config.optimizers:
        config.optimizers.insert(0, BASELINE)
    if config.model_steps is None:
        config.model_steps = ["pinn32"]
        if jax.default_backend() == "gpu":
            config.model_steps.append("resnet50_bs256")
    if config.outdir is None:
        config.outdir = str(REPO / "benchmarks" / "results")
    return config


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    config = parse_args(argv)
    COMPILER_OPTIONS.clear()
    if config.quick:
        COMPILER_OPTIONS.update(QUICK_COMPILER_OPTIONS)
    start = time.perf_counter()
    meta = overhead_metadata(config)
    print(f"JAX devices: {jax.devices()}; {meta['device']}", flush=True)
    outdir = pathlib.Path(config.outdir)
    path = outdir / f"overhead_{jax.default_backend()}.json"
    if config.only == "train-steps":
        results = json.loads(path.read_text()) if path.exists() else {}
        results["train_steps"] = train_steps_section(config)
        wall_time_s = results["train_steps"]["wall_time_s"]
    else:
        results = {"meta": meta, "config": vars(config)}
        results["trees"] = {name: benchmark_tree(name, config) for name in config.trees}
        results["model_steps"] = {
            name: benchmark_model_step(name, config) for name in config.model_steps
        }
        results["train_steps"] = train_steps_section(config)
        results["compiles_during_timing"] = TIMED_COMPILES[0]
        results["wall_time_s"] = wall_time_s = time.perf_counter() - start
    outdir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1) + "\n")
    print(f"Wrote {path} ({wall_time_s:.0f} s)")
    return results


if __name__ == "__main__":
    main()
