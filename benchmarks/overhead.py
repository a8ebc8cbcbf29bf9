"""Overhead of StableGrad, as a ratio to optax.adam timed in the same process.

Setting: a Flax linen tanh MLP (input dim 2, ``--width`` 50, ``--depths`` 16
and 64 hidden layers, output layer ``head``) with an MSE loss on 512 random
points. Optimizers:

* ``adam``: ``optax.adam(1e-3)``, the baseline every ratio divides by;
* ``stablegrad+adam``: ``optax.chain(sgo.stablegrad(), optax.adam(1e-3))``;
* ``stablegrad(geometric_mean)+adam`` and ``stablegrad(ema_decay=0.9)+adam``;
* the nearest optax peers: ``adaptive_grad_clip(0.01)+adam`` and
  ``optax.lamb(1e-3)`` (trust ratio).

Three timings, each in its own set of rounds:

* ``train step``: the jitted grad + update + apply_updates, called from Python.
* ``update, jit call``: ``jax.jit(tx.update)`` called from Python on fixed
  gradients (the state is carried from call to call). With ~100 small arrays
  in and out, this one is mostly Python/PjRt dispatch, not arithmetic.
* ``update, compiled loop``: the same update run ``n`` times inside one
  jitted ``lax.fori_loop``, so dispatch is out and what is left is the
  update's own compute. Step ``i`` scales the gradients and parameters by
  ``1 + 1e-7 i`` (a multiply that fuses into the first reads) so that XLA
  cannot hoist gradient- or parameter-only work out of the loop (it did
  through an ``optimization_barrier``); the HLO section checks that each loop
  body holds at least the update's own fusions.

The update timings also cover ``stablegrad`` alone (no adam after it), and
gradients scaled by 1e-30, whose float32 sums of squares underflow so that
StableGrad's ``lax.cond`` takes its rescaled (slow) path; the script checks
that it did and that the statistics it gives are 1e-30 times the normal ones.

Method: everything is compiled and warmed up first; each entry's steps per
round are calibrated so that one block takes about ``--block-seconds``; then
``--rounds`` rounds run every entry once, in an order rotated by one every
round. Reported: the median over the rounds of the per-step time, the ratio
of that median to adam's, and the range of the per-round ratios (entry / adam
in the same round). Absolute times on a shared 2-core CPU mean little; the
ratios are the result.

It also reads the optimized HLO of ``jax.jit(sgo.stablegrad().update)`` at
``--hlo-depth`` and counts which fusions read each gradient kernel on the fast
path, and how many fusions each optimizer's update compiles to.

Outputs: ``overhead.json`` (raw numbers) and ``overhead.md`` (tables, metadata
and the HLO summary) in ``--outdir`` (default ``benchmarks/results``).

Usage::

  python benchmarks/overhead.py                           # ~4 min on 2 cores
  python benchmarks/overhead.py --quick --outdir /tmp/oh  # smoke run, seconds
"""

from __future__ import annotations

import argparse
import collections
import datetime
import gc
import json
import math
import os
import pathlib
import platform
import re
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import jaxlib
import numpy as np
import optax

import stablegrad_optax as sgo
from stablegrad_optax import _layers, _statistic

REPO = pathlib.Path(__file__).resolve().parent.parent
LEARNING_RATE = 1e-3
TINY_SCALE = 1e-30
BASELINE = "adam"
TINY_SUFFIX = " [1e-30 grads]"


def optimizers() -> dict[str, optax.GradientTransformation]:
    """The timed optimizers; the first is the baseline."""
    lr = LEARNING_RATE
    return {
        "adam": optax.adam(lr),
        "stablegrad+adam": optax.chain(sgo.stablegrad(), optax.adam(lr)),
        "stablegrad(geometric_mean)+adam": optax.chain(
            sgo.stablegrad("geometric_mean"), optax.adam(lr)
        ),
        "stablegrad(ema_decay=0.9)+adam": optax.chain(
            sgo.stablegrad(ema_decay=0.9), optax.adam(lr)
        ),
        "adaptive_grad_clip(0.01)+adam": optax.chain(
            optax.adaptive_grad_clip(0.01), optax.adam(lr)
        ),
        "lamb": optax.lamb(lr),
    }


class MLP(nn.Module):
    """A tanh MLP: hidden layers ``hidden_0``..``hidden_{depth-1}``, then ``head``."""

    depth: int = 16
    width: int = 50

    @nn.compact
    def __call__(self, x):
        for i in range(self.depth):
            x = jnp.tanh(nn.Dense(self.width, name=f"hidden_{i}")(x))
        return nn.Dense(1, name="head")(x)


class Problem(NamedTuple):
    model: MLP
    params: Any
    x: jax.Array
    y: jax.Array
    grads: Any


def make_problem(depth: int, config: argparse.Namespace) -> Problem:
    kx, kinit = jax.random.split(jax.random.key(config.seed))
    x = jax.random.uniform(kx, (config.points, 2), minval=-1.0, maxval=1.0)
    y = jnp.sin(3 * x[:, :1]) * jnp.cos(2 * x[:, 1:]) + 0.5 * x[:, :1] * x[:, 1:]
    model = MLP(depth=depth, width=config.width)
    params = model.init(kinit, x[:1])["params"]
    grads = jax.jit(jax.grad(loss_fn, argnums=1), static_argnums=0)(model, params, x, y)
    return Problem(model, params, x, y, grads)


def loss_fn(model, params, x, y):
    return jnp.mean((model.apply({"params": params}, x) - y) ** 2)


# ----------------------------------------------------------------------------
# Timed entries. Each is a closure `run(n)` that does n steps and blocks; it
# carries its own state from call to call.


def train_entry(problem: Problem, tx) -> Callable[[int], None]:
    model = problem.model

    @jax.jit
    def step(params, opt_state, x, y):
        grads = jax.grad(lambda p: loss_fn(model, p, x, y))(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    carry = [problem.params, tx.init(problem.params)]

    def run(n: int) -> None:
        params, opt_state = carry
        for _ in range(n):
            params, opt_state = step(params, opt_state, problem.x, problem.y)
        jax.block_until_ready((params, opt_state))
        carry[:] = [params, opt_state]

    run.final_loss = lambda: float(loss_fn(model, carry[0], problem.x, problem.y))
    return run


def update_call_entry(problem: Problem, tx, grads, update) -> Callable[[int], None]:
    """`update` is `jax.jit(tx.update)`, shared by the entries of one `tx`."""
    params = problem.params
    carry = [tx.init(params)]

    def run(n: int) -> None:
        state = carry[0]
        for _ in range(n):
            updates, state = update(grads, state, params)
        jax.block_until_ready((updates, state))
        carry[0] = state

    return run


def update_loop(tx) -> Callable[..., Any]:
    """`n` updates inside one jitted `fori_loop`; returns (state, last updates)."""

    @jax.jit
    def loop(grads, state, updates, params, n):
        def body(i, carry):
            # Gradients and parameters scaled by 1 + 1e-7 i differ at every
            # step, so XLA cannot hoist work that depends on them alone out of
            # the loop (an optimization_barrier did not stop it); the multiply
            # fuses into the first reads. The updates are carried out of the
            # loop so that they stay live.
            scale = 1.0 + 1e-7 * i.astype(jnp.float32)
            g, p = jax.tree.map(lambda x: x * scale.astype(x.dtype), (grads, params))
            updates, state = tx.update(g, carry[0], p)
            return state, updates

        return jax.lax.fori_loop(0, n, body, (state, updates))

    return loop


def update_loop_entry(problem: Problem, tx, grads, loop) -> Callable[[int], None]:
    params = problem.params
    carry = [(tx.init(params), jax.tree.map(jnp.zeros_like, grads))]

    def run(n: int) -> None:
        carry[0] = jax.block_until_ready(loop(grads, *carry[0], params, n))

    return run


# ----------------------------------------------------------------------------
# Timing.


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
) -> dict[str, Any]:
    """Runs each entry `iters[label]` steps per round, rotating the order."""
    labels = list(entries)
    times: dict[str, list[float]] = {label: [] for label in labels}
    gc.collect()
    gc.disable()
    try:
        for r in range(rounds):
            shift = r % len(labels)
            for label in labels[shift:] + labels[:shift]:
                start = time.perf_counter()
                entries[label](iters[label])
                times[label].append((time.perf_counter() - start) / iters[label])
    finally:
        gc.enable()
    base = np.asarray(times[baseline])
    base_median = float(np.median(base))
    out = {}
    for label in labels:
        t = np.asarray(times[label])
        per_round = t / base
        out[label] = {
            "iters": iters[label],
            "times_s": t.tolist(),
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
    result = time_rounds(entries, config.rounds, iters)
    result["compile_and_warmup_s"] = compile_s
    for label, entry in result["entries"].items():
        print(
            f"    {label:44s} {entry['median_s'] * 1e6:10.1f} us  "
            f"{entry['ratio_to_adam']:6.2f}x",
            flush=True,
        )
    return result


def fallback_check(problem: Problem, tiny_grads) -> dict[str, Any]:
    """Checks that 1e-30 gradients take StableGrad's rescaled path, correctly."""
    _, _, layers = _layers.tree_layers(tiny_grads)
    leaves = jax.tree.leaves(tiny_grads)
    mean_squares = [
        float(
            sum(jnp.sum(jnp.square(leaves[i])) for i in layer.weights)
            / sum(leaves[i].size for i in layer.weights)
        )
        for layer in layers
    ]
    tx = sgo.stablegrad()
    update = jax.jit(tx.update)
    _, normal = update(problem.grads, tx.init(problem.params))
    _, tiny = update(tiny_grads, tx.init(problem.params))
    ratio = np.asarray(tiny.stats, np.float64) / np.asarray(normal.stats, np.float64)
    rel_err = float(np.max(np.abs(ratio / TINY_SCALE - 1.0)))
    return {
        # The fast path's condition (see _statistic): any layer's float32 mean
        # square below 2^-100 (or zero) sends every layer to the rescaled path.
        "layers_with_unsafe_mean_square": sum(
            ms < _statistic._SAFE_MEAN_SQUARE for ms in mean_squares
        ),
        "num_layers": len(layers),
        "fallback_taken": any(ms < _statistic._SAFE_MEAN_SQUARE for ms in mean_squares),
        "stats_ratio_to_normal_over_1e-30_max_rel_err": rel_err,
        "stats_correct": rel_err < 1e-4,
    }


def benchmark_depth(depth: int, config: argparse.Namespace) -> dict[str, Any]:
    problem = make_problem(depth, config)
    txs = optimizers()
    tiny = jax.tree.map(lambda g: g * TINY_SCALE, problem.grads)
    layer_names = sgo.layer_names(problem.params)
    index = int(sgo.stablegrad().init(problem.params).reference_index)
    print(
        f"depth {depth}: {len(jax.tree.leaves(problem.params))} leaves, "
        f"{sum(x.size for x in jax.tree.leaves(problem.params))} parameters; "
        f"stablegrad() reference layer: {layer_names[index]}",
        flush=True,
    )
    update_txs = {**txs, "stablegrad alone": sgo.stablegrad()}
    tiny_names = ("adam", "stablegrad+adam", "stablegrad alone")
    # One jitted function per optimizer, shared by its normal and 1e-30 entries
    # (same shapes, so one compilation).
    calls = {k: jax.jit(tx.update) for k, tx in update_txs.items()}
    loops = {k: update_loop(tx) for k, tx in update_txs.items()}
    call_entries = {
        k: update_call_entry(problem, tx, problem.grads, calls[k])
        for k, tx in update_txs.items()
    }
    loop_entries = {
        k: update_loop_entry(problem, tx, problem.grads, loops[k])
        for k, tx in update_txs.items()
    }
    for k in tiny_names:
        tx = update_txs[k]
        call_entries[k + TINY_SUFFIX] = update_call_entry(problem, tx, tiny, calls[k])
        loop_entries[k + TINY_SUFFIX] = update_loop_entry(problem, tx, tiny, loops[k])

    train = {k: train_entry(problem, tx) for k, tx in txs.items()}
    result = {
        "depth": depth,
        "num_leaves": len(jax.tree.leaves(problem.params)),
        "num_params": int(sum(x.size for x in jax.tree.leaves(problem.params))),
        "reference_layer": layer_names[index],
        "fallback_check": fallback_check(problem, tiny),
        "train_step": timed_section("train step", train, config),
        "update_call": timed_section("update, jit call", call_entries, config),
        "update_loop": timed_section("update, compiled loop", loop_entries, config),
    }
    result["train_final_loss"] = {k: run.final_loss() for k, run in train.items()}
    return result


# ----------------------------------------------------------------------------
# HLO inspection.


class Instr(NamedTuple):
    name: str
    opcode: str
    operands: tuple[str, ...]
    calls: tuple[str, ...]
    elements: int | None  # None for a tuple shape
    root: bool
    index: int  # N of parameter(N); -1 for other instructions


_HEADER = re.compile(r"^(ENTRY\s+)?%?([\w.\-]+)\s+\(.*->.*\{\s*$")
_INSTR = re.compile(r"^\s+(ROOT\s+)?%?([\w.\-]+)\s*=\s*(.*)$")
_OPCODE = re.compile(r"\s([a-z][a-z0-9\-]*)\(")
_CALLS = re.compile(r"(?:calls|to_apply|body|condition)=%?([\w.\-]+)")
_BRANCHES = re.compile(r"branch_computations=\{([^}]*)\}")


def _matching_paren(text: str, start: int) -> int:
    depth = 0
    for i in range(start, len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return i
    return len(text)


def parse_hlo(text: str) -> tuple[dict[str, list[Instr]], str]:
    """Optimized HLO text -> ({computation: instructions}, entry name)."""
    comps: dict[str, list[Instr]] = {}
    entry, current = None, None
    for line in text.splitlines():
        if current is None:
            header = _HEADER.match(line)
            if header:
                current = header.group(2)
                comps[current] = []
                entry = current if header.group(1) else entry
            continue
        if line.startswith("}"):
            current = None
            continue
        match = _INSTR.match(line)
        if not match:
            continue
        rest = match.group(3)
        op = _OPCODE.search(rest)
        if not op:
            continue
        close = _matching_paren(rest, op.end() - 1)
        operands = tuple(re.findall(r"%([\w.\-]+)", rest[op.end() : close]))
        attributes = rest[close:]
        calls = _CALLS.findall(attributes)
        for group in _BRANCHES.findall(attributes):
            calls += [c.strip().lstrip("%") for c in group.split(",") if c.strip()]
        shape = re.match(r"\s*[a-z0-9]+\[([\d,]*)\]", rest)
        index = -1
        if op.group(1) == "parameter":
            index = int(rest[op.end() : close])
        elements = None
        if shape:
            dims = [int(d) for d in shape.group(1).split(",") if d]
            elements = int(np.prod(dims)) if dims else 1
        comps[current].append(
            Instr(
                match.group(2),
                op.group(1),
                operands,
                tuple(calls),
                elements,
                bool(match.group(1)),
                index,
            )
        )
    if entry is None:
        raise ValueError("no ENTRY computation found")
    return comps, entry


def _opcodes(comps, name: str, seen=None) -> set[str]:
    """Opcodes of a computation and of everything it calls."""
    seen = set() if seen is None else seen
    if name in seen or name not in comps:
        return set()
    seen.add(name)
    ops = set()
    for ins in comps[name]:
        ops.add(ins.opcode)
        for callee in ins.calls:
            ops |= _opcodes(comps, callee, seen)
    return ops


_FREE = {"parameter", "constant", "get-tuple-element", "tuple", "bitcast"}


def entry_counts(text: str) -> dict[str, int]:
    """How many operations of each kind the ENTRY computation runs."""
    comps, entry = parse_hlo(text)
    instrs = comps[entry]
    reduces = [
        i
        for i in instrs
        if i.opcode == "fusion"
        and {"reduce", "reduce-window"} & _opcodes(comps, i.calls[0])
    ]
    return {
        "ops": sum(i.opcode not in _FREE for i in instrs),
        "fusions": sum(i.opcode == "fusion" for i in instrs),
        "reduction_fusions": len(reduces),
        "reduce_window_fusions": sum(
            "reduce-window" in _opcodes(comps, i.calls[0]) for i in reduces
        ),
        "conditionals": sum(i.opcode == "conditional" for i in instrs),
    }


def kernel_reads(text: str, leaves: Sequence[tuple[str, tuple[int, ...]]]):
    """For each weight leaf (ndim >= 2), what in the ENTRY computation reads it.

    `leaves` are (name, shape) of the gradient leaves, which must be the first
    parameters of the computation, in order (the gradients are the first
    argument of `jax.jit(update, keep_unused=True)`).
    """
    comps, entry = parse_hlo(text)
    instrs = comps[entry]
    users = collections.defaultdict(list)
    for ins in instrs:
        for operand in ins.operands:
            users[operand].append(ins)
    params = {ins.index: ins for ins in instrs if ins.opcode == "parameter"}

    def reduces(ins):
        return ins.opcode == "fusion" and bool(
            {"reduce", "reduce-window"} & _opcodes(comps, ins.calls[0])
        )

    def kind(ins, size):
        if ins.opcode == "conditional" or (
            ins.opcode == "tuple"
            and any(u.opcode == "conditional" for u in users[ins.name])
        ):
            return "passed to the lax.cond (read only if the rescaled branch runs)"
        if ins.opcode in ("bitcast", "reshape"):
            inner = sorted({kind(u, size) for u in users[ins.name]})
            return f"{ins.opcode}, then " + " and ".join(inner)
        if ins.opcode == "concatenate":
            readers = users[ins.name]
            temps = sum(u.opcode == "fusion" and not reduces(u) for u in readers)
            return (
                "copied into a concatenate that stacks same-shaped kernels (a "
                f"full read plus write); {len(readers)} ops read the stack, {temps} "
                "of them elementwise fusions writing full-size temporaries"
            )
        if ins.opcode != "fusion":
            return f"{ins.opcode} (not a fusion)"
        if reduces(ins):
            return "fusion that reduces it directly"
        if ins.elements is not None and ins.elements < size:
            return "fusion reading one entry (the shift)"
        readers = [u for u in users[ins.name] if reduces(u)]
        if readers:
            ops = _opcodes(comps, readers[0].calls[0])
            what = "reduce-window" if "reduce-window" in ops else "reduce"
            return (
                "elementwise fusion writing a full-size temporary, which a "
                f"{what} fusion then reads"
            )
        if any(u.root for u in users[ins.name]):
            return "elementwise fusion writing the output (the rescale)"
        return "elementwise fusion (other)"

    per_leaf = {}
    for i, (name, shape) in enumerate(leaves):
        if len(shape) < 2:
            continue
        size = int(np.prod(shape))
        per_leaf[name] = dict(
            collections.Counter(kind(u, size) for u in users[params[i].name])
        )
    signatures = collections.Counter(
        json.dumps(v, sort_keys=True) for v in per_leaf.values()
    )
    common, count = signatures.most_common(1)[0]
    branch_fusions = [
        sum(i.opcode == "fusion" for i in comps.get(branch, []))
        for ins in instrs
        if ins.opcode == "conditional"
        for branch in ins.calls
    ]
    return {
        "per_leaf": per_leaf,
        "most_common": json.loads(common),
        "leaves_with_most_common": count,
        "weight_leaves": len(per_leaf),
        "conditional_branch_fusions": branch_fusions,
    }


def loop_body_fusions(problem: Problem, tx) -> int:
    """Fusions in the while body of `update_loop(tx)` (checks nothing was hoisted)."""
    params = problem.params
    zeros = jax.tree.map(jnp.zeros_like, problem.grads)
    lowered = update_loop(tx).lower(problem.grads, tx.init(params), zeros, params, 1)
    comps, entry = parse_hlo(lowered.compile().as_text())
    bodies = {
        name for ins in comps[entry] if ins.opcode == "while" for name in ins.calls
    }
    return sum(ins.opcode == "fusion" for name in bodies for ins in comps[name])


def inspect_hlo(config: argparse.Namespace) -> dict[str, Any]:
    """Optimized HLO of each update on CPU at --hlo-depth; reads of each kernel."""
    problem = make_problem(config.hlo_depth, config)
    grads, params = problem.grads, problem.params
    counts = {}
    txs = {**optimizers(), "stablegrad alone": sgo.stablegrad()}
    for name, tx in txs.items():
        compiled = jax.jit(tx.update).lower(grads, tx.init(params), params).compile()
        counts[name] = entry_counts(compiled.as_text())
        counts[name]["loop_body_fusions"] = loop_body_fusions(problem, tx)
    tx = sgo.stablegrad()
    text = (
        jax.jit(tx.update, keep_unused=True)
        .lower(grads, tx.init(params), params)
        .compile()
        .as_text()
    )
    with_path = jax.tree_util.tree_flatten_with_path(grads)[0]
    leaves = [(_layers.path_name(p), tuple(np.shape(x))) for p, x in with_path]
    reads = kernel_reads(text, leaves)
    return {
        "depth": config.hlo_depth,
        "backend": jax.default_backend(),
        "entry_counts": counts,
        "stablegrad_kernel_reads": reads,
    }


# ----------------------------------------------------------------------------
# Reporting.


def run_metadata() -> dict[str, Any]:
    device = jax.devices()[0]

    def git(*args):
        try:
            return subprocess.run(
                ["git", *args], cwd=REPO, capture_output=True, text=True, check=True
            ).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return None

    status = git("status", "--porcelain")
    return {
        "command": " ".join(["python", *sys.argv]),
        "device": f"{device.platform}: {device.device_kind}",
        "jax_device": str(device),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else None,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        ),
        "git_commit": git("rev-parse", "--short", "HEAD"),
        "git_dirty": bool(status) if status is not None else None,
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "optax": optax.__version__,
        "stablegrad_optax": sgo.__version__,
        "XLA_FLAGS": os.environ.get("XLA_FLAGS"),
    }


def _cell(entry: dict[str, Any] | None) -> tuple[str, str]:
    if entry is None:
        return "—", "—"
    return (
        f"{entry['median_s'] * 1e6:.0f}",
        f"**{entry['ratio_to_adam']:.2f}x** "
        f"({entry['round_ratio_min']:.2f}–{entry['round_ratio_max']:.2f})",
    )


def depth_table(result: dict[str, Any]) -> str:
    sections = ("train_step", "update_call", "update_loop")
    labels: list[str] = []
    for section in sections:
        for label in result[section]["entries"]:
            if label not in labels:
                labels.append(label)
    head = (
        "| optimizer | train step (us) | ratio | update, jit call (us) | ratio "
        "| update, compiled loop (us) | ratio |\n|---|---:|---|---:|---|---:|---|\n"
    )
    rows = []
    for label in labels:
        cells = []
        for section in sections:
            cells += _cell(result[section]["entries"].get(label))
        rows.append(f"| {label} | " + " | ".join(cells) + " |")

    def steps(section):
        n = [e["iters"] for e in result[section]["entries"].values()]
        return f"{min(n)}-{max(n)}" if min(n) != max(n) else f"{n[0]}"

    summary = "; ".join(
        f"{label}: {result[s]['rounds']} rounds of {steps(s)} steps"
        for label, s in zip(
            ("train step", "update, jit call", "update, compiled loop"),
            sections,
            strict=True,
        )
    )
    return head + "\n".join(rows) + f"\n\nSteps per entry and round: {summary}.\n"


def hlo_summary(hlo: dict[str, Any]) -> str:
    reads = hlo["stablegrad_kernel_reads"]
    counts = hlo["entry_counts"]
    lines = [
        f"Optimized HLO of `jax.jit(sgo.stablegrad().update)` on "
        f"{hlo['backend']}, depth {hlo['depth']} (fast path = the ENTRY "
        "computation). Per gradient kernel, the things that read it "
        f"({reads['leaves_with_most_common']} of {reads['weight_leaves']} "
        "kernels look like this):",
        "",
    ]
    common = reads["most_common"]
    lines += [f"- {n} x {k}" for k, n in sorted(common.items())]
    full = sum(
        n
        for k, n in common.items()
        for part in k.split(" and ")
        if any(w in part for w in ("elementwise", "reduces it", "concatenate"))
    )
    temporaries = sum(n for k, n in common.items() if "temporar" in k)
    direct = sum(n for k, n in common.items() if "reduces it directly" in k)
    branches = reads["conditional_branch_fusions"]
    lines += [
        "",
        f"So on the fast path each kernel is read in full {full} times "
        f"({direct} by a fusion that reduces it directly); {temporaries} of "
        "these reads feed elementwise fusions that write full-size temporaries "
        "which the reductions then read back; "
        "a sum and a sum of squares fused into one pass plus the rescale "
        "would be 2 reads and no temporary. The `lax.cond` compiles to a "
        f"rescaled branch of {max(branches, default=0)} fusions (run only when "
        "a layer's mean square is unsafe) and a pass-through branch of "
        f"{min(branches, default=0)}.",
        "",
        "ENTRY computation of each optimizer's `jax.jit(tx.update)` at this depth:",
        "",
        "| update | ops | fusions | with a reduction | of which reduce-window "
        "| conditionals | fusions in the compiled-loop body |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, c in counts.items():
        lines.append(
            f"| {name} | {c['ops']} | {c['fusions']} | {c['reduction_fusions']} | "
            f"{c['reduce_window_fusions']} | {c['conditionals']} | "
            f"{c['loop_body_fusions']} |"
        )
    adam, chained = counts["adam"]["fusions"], counts["stablegrad+adam"]["fusions"]
    alone = counts["stablegrad alone"]["fusions"]
    lines += [
        "",
        f"StableGrad adds {chained - adam} fusions to adam's {adam} when "
        f"chained before it ({alone} on its own: its per-leaf rescale fuses "
        "into adam's moment updates).",
        "",
        "(The last column checks the `update, compiled loop` timing: its loop "
        "body must hold at least the update's own fusions, else XLA hoisted "
        "work out of the loop.)",
    ]
    return "\n".join(lines) + "\n"


def write_outputs(results: dict[str, Any], outdir: pathlib.Path):
    outdir.mkdir(parents=True, exist_ok=True)
    (outdir / "overhead.json").write_text(json.dumps(results, indent=1) + "\n")
    meta = results["meta"]
    cfg = results["config"]
    parts = [
        "# StableGrad overhead, as a ratio to optax.adam\n",
        f"Command: `{meta['command']}`  \n"
        f"Device: {meta['device']} ({meta['jax_device']}), {meta['cpu_count']} "
        f"CPUs  \nDate: {meta['date']}; git {meta['git_commit']}"
        f"{' (dirty tree)' if meta['git_dirty'] else ''}; jax {meta['jax']}, "
        f"jaxlib {meta['jaxlib']}, optax {meta['optax']}, python "
        f"{meta['python']}  \nWall time of the run: {results['wall_time_s']:.0f} s\n",
        f"Tanh MLP, width {cfg['width']}, input dim 2, output layer `head`, MSE "
        f"on {cfg['points']} random points; learning rate {LEARNING_RATE}. Each "
        "cell: median per-step time over the rounds, and its ratio to adam's "
        "median from the same round set (in brackets: the range of the "
        "per-round ratios). `train step` = jitted grad + update + "
        "apply_updates; `update, jit call` = `jax.jit(tx.update)` called from "
        "Python on fixed gradients (much of it is Python/PjRt dispatch of the "
        "tree's arrays); `update, "
        "compiled loop` = the update repeated inside one `lax.fori_loop` "
        "(compute only; gradients and parameters are scaled by 1 + 1e-7 i at "
        "step i so that XLA cannot hoist work out of the loop). `stablegrad "
        "alone` has no adam after it. "
        f"Rows marked `{TINY_SUFFIX.strip()}` take gradients scaled by 1e-30, "
        "where StableGrad's `lax.cond` runs the rescaled (slow) path; their "
        "ratio is still to adam on normal gradients (compare with the `adam "
        f"{TINY_SUFFIX.strip()}` row). Absolute times on a shared CPU mean "
        "little.\n",
    ]
    for result in results["depths"].values():
        check = result["fallback_check"]
        error = check["stats_ratio_to_normal_over_1e-30_max_rel_err"]
        parts.append(
            f"## Depth {result['depth']} ({result['num_params']} parameters, "
            f"{result['num_leaves']} leaves)\n\n"
            + depth_table(result)
            + f"\n1e-30 gradients: rescaled path taken: {check['fallback_taken']} "
            f"({check['layers_with_unsafe_mean_square']} of {check['num_layers']} "
            "layers below the safe mean square); statistics equal 1e-30 x the "
            f"normal ones to {error:.1e} relative.\n"
        )
    parts.append("## What XLA compiles\n\n" + hlo_summary(results["hlo"]))
    (outdir / "overhead.md").write_text("\n".join(parts))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depths", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--width", type=int, default=50)
    parser.add_argument("--points", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument(
        "--block-seconds",
        type=float,
        default=0.2,
        help="target time of one entry's block of steps (sets the steps per round)",
    )
    parser.add_argument("--min-iters", type=int, default=5)
    parser.add_argument(
        "--iters", type=int, default=None, help="fixed steps per round (no calibration)"
    )
    parser.add_argument("--hlo-depth", type=int, default=16)
    parser.add_argument("--outdir", default=None, help="default: benchmarks/results")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: depth 4, 2 rounds x 3 steps; needs --outdir",
    )
    config = parser.parse_args(argv)
    if config.quick:
        if config.outdir is None:
            parser.error("--quick needs --outdir (to keep the real results)")
        config.depths, config.rounds, config.iters, config.hlo_depth = [4], 2, 3, 4
    if config.outdir is None:
        config.outdir = str(REPO / "benchmarks" / "results")
    return config


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    config = parse_args(argv)
    start = time.perf_counter()
    meta = run_metadata()
    print(f"JAX devices: {jax.devices()}; {meta['cpu_count']} CPUs", flush=True)
    results: dict[str, Any] = {"meta": meta, "config": vars(config), "depths": {}}
    for depth in config.depths:
        results["depths"][f"depth_{depth}"] = benchmark_depth(depth, config)
    results["hlo"] = inspect_hlo(config)
    results["wall_time_s"] = time.perf_counter() - start
    write_outputs(results, pathlib.Path(config.outdir))
    print(
        f"Wrote overhead.json and overhead.md to {config.outdir} "
        f"({results['wall_time_s']:.0f} s)"
    )
    return results


if __name__ == "__main__":
    main()
