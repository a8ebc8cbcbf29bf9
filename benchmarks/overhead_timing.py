"""How overhead.py times its entries: compiled once, then interleaved rounds.

An *entry* is a closure ``run(n)`` that does ``n`` steps and blocks, carrying its
own state. Per entry: per-step times by wall clock and by the process's CPU time
(all its threads, leaving out the time other processes held the cores), their
median, its ratio to adam's and the range of the per-round ratios. XLA
compilations during the timed rounds are counted: there must be none.
"""

from __future__ import annotations

import argparse
import gc
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

BASELINE = "adam"
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
    print(
        f"  {name}: compiled and warmed up {len(entries)} entries in "
        f"{compile_s:.1f}s; {config.rounds} rounds of "
        f"{min(iters.values())}-{max(iters.values())} steps",
        flush=True,
    )
    labels = list(entries)
    times = {label: ([], []) for label in labels}  # (wall clock, CPU) per step
    gc.collect()
    gc.disable()
    compiles = COMPILES[0]
    try:
        for r in range(config.rounds):
            shift = r % len(labels)
            for label in labels[shift:] + labels[:shift]:
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
        out[label] = {
            "iters": iters[label],
            "times_s": wall,
            "cpu_times_s": cpu,
            "median_s": float(np.median(wall)),
            "ratio_to_adam": ratios.pop("ratio"),
            **ratios,
        }
        print(
            f"    {label:44s} {out[label]['median_s'] * 1e6:10.1f} us  "
            f"{out[label]['ratio_to_adam']:6.2f}x",
            flush=True,
        )
    return {"rounds": config.rounds, "entries": out, "compile_and_warmup_s": compile_s}


def ratio_between(section: dict[str, Any], top: str, bottom: str) -> dict[str, Any]:
    """Entry `top`'s median per-step time over `bottom`'s, with the per-round
    range, by wall clock and (``cpu_``) by the process's CPU time."""
    entries, out = section["entries"], {"of": top, "to": bottom}
    for prefix, key in (("", "times_s"), ("cpu_", "cpu_times_s")):
        out |= _ratios(entries[top][key], entries[bottom][key], prefix)
    return out
