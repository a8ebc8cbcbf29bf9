"""How overhead.py times its entries: compiled once, then interleaved rounds.

An *entry* is a closure ``run(n)`` that does ``n`` steps and blocks, carrying
its own state from call to call. `timed_section` compiles and warms up every
entry, calibrates each one's steps per round so that a block takes about
``--block-seconds``, then runs ``--rounds`` rounds of every entry once, in an
order rotated by one every round. Reported per entry: the per-step times, the
median, its ratio to adam's median and the range of the per-round ratios, by
wall-clock time and by the process's CPU time (all its threads, which leaves
out the time other processes held the cores). A listener counts XLA
compilations during the timed rounds (there must be none: no retrace between
steps).
"""

from __future__ import annotations

import argparse
import gc
import math
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

BASELINE = "adam"
# Options of every compilation here. A quick run (a smoke test: its times
# mean nothing) leaves out LLVM's optimizations, which take about a third of
# XLA:CPU's compile time; the optimized HLO that `hlo_reads` reads comes
# before them, so its counts are the same.
QUICK_COMPILER_OPTIONS = {
    "xla_backend_optimization_level": 0,
    "xla_llvm_disable_expensive_passes": True,
}
COMPILER_OPTIONS: dict[str, Any] = {}
COMPILES = [0]  # XLA backend compilations so far (a retrace shows up as one)
TIMED_COMPILES = [0]  # compilations seen inside timed rounds


def _count_compiles(event: str, duration: float, **kwargs) -> None:
    del duration, kwargs
    if event == "/jax/core/compile/backend_compile_duration":
        COMPILES[0] += 1


jax.monitoring.register_event_duration_secs_listener(_count_compiles)


def jit(fun: Callable[..., Any], **kwargs: Any) -> Any:
    """`jax.jit` with `COMPILER_OPTIONS` (set by `overhead.main`: quick or not)."""
    return jax.jit(fun, compiler_options=dict(COMPILER_OPTIONS) or None, **kwargs)


def xla_cost(lowered) -> dict[str, float]:
    """XLA's cost model of one compiled call (after a run: no new compile)."""
    cost = lowered.compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    keys = ("flops", "transcendentals", "bytes accessed")
    return {key.replace(" ", "_"): float(cost[key]) for key in keys}


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


def time_rounds(
    entries: dict[str, Callable[[int], None]],
    rounds: int,
    iters: dict[str, int],
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
    compiles = COMPILES[0]
    try:
        for r in range(rounds):
            shift = r % len(labels)
            for label in labels[shift:] + labels[:shift]:
                start, cpu_start = time.perf_counter(), time.process_time()
                entries[label](iters[label])
                wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
                steps = iters[label] * steps_per_call
                times[label].append(wall / steps)
                cpu_times[label].append(cpu / steps)
    finally:
        gc.enable()
        TIMED_COMPILES[0] += COMPILES[0] - compiles
    base_median = float(np.median(times[BASELINE]))
    out = {}
    for label in labels:
        t = np.asarray(times[label])
        per_round = t / np.asarray(times[BASELINE])
        out[label] = {
            "iters": iters[label],
            "times_s": t.tolist(),
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
    iters = {
        label: config.iters or calibrate(run, config.block_seconds, config.min_iters)
        for label, run in entries.items()
    }
    print(
        f"  {name}: compiled and warmed up {len(entries)} entries in "
        f"{compile_s:.1f}s; {config.rounds} rounds of "
        f"{min(iters.values())}-{max(iters.values())} steps",
        flush=True,
    )
    result = time_rounds(entries, config.rounds, iters, steps_per_call)
    result["compile_and_warmup_s"] = compile_s
    for label, entry in result["entries"].items():
        print(
            f"    {label:44s} {entry['median_s'] * 1e6:10.1f} us  "
            f"{entry['ratio_to_adam']:6.2f}x",
            flush=True,
        )
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
