"""Cost of StableGrad, as a ratio to optax.adam timed in the same process.

Three sections, each timed in interleaved rounds (`overhead_timing`):

* ``trees``: the update alone on parameter trees shaped like a ResNet-50, a
  64-layer MLP and a bfloat16 transformer, with adam (the baseline every ratio
  divides by), ``stablegrad+adam`` for each reference mode, ``stablegrad``
  alone and the nearest peers ``adaptive_grad_clip(0.01)+adam``,
  ``centralize+adam``, ``lars`` and ``sgo.adamp``, every learning rate 1e-3
  (timing only); and what XLA compiles for the update (`overhead_updates`);
* ``model_steps``: full jitted training steps (`overhead_steps`);
* ``train_steps``: the paper's variant against the output reference, whole
  training steps of a PINN and a BN-free ResNet-18 (`overhead_steps`).

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
import json
import os
import pathlib
import platform
import sys
import time
from collections.abc import Sequence
from typing import Any

import jax
import jaxlib

import overhead_timing as timing
from overhead_steps import (
    MODEL_STEPS,
    TRAIN_STEPS,
    benchmark_model_step,
    benchmark_train_step,
)

# Re-exported: the tests read the train steps' labels and optimizers here.
from overhead_steps import OUTPUT as OUTPUT
from overhead_steps import PAPER as PAPER
from overhead_steps import train_step_optimizers as train_step_optimizers
from overhead_updates import TREES, benchmark_tree, optimizers

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "examples"))
from common import name_list, positive, run_metadata  # noqa: E402

RESULTS = pathlib.Path(__file__).resolve().parent / "results"


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


def train_steps_section(config: argparse.Namespace) -> dict[str, Any]:
    """The `train_steps` section of the JSON, with its own provenance."""
    start, compiles = time.perf_counter(), timing.TIMED_COMPILES[0]
    meta = overhead_metadata(config)
    models_ = {name: benchmark_train_step(name, config) for name in config.train_steps}
    return {
        "meta": meta,
        "config": {
            k: getattr(config, k)
            for k in ("rounds", "block_seconds", "min_iters", "iters", "chunk", "seed")
        },
        "models": models_,
        "compiles_during_timing": timing.TIMED_COMPILES[0] - compiles,
        "wall_time_s": time.perf_counter() - start,
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--trees", type=name_list(tuple(TREES), "tree"), default=list(TREES))
    add(
        "--model-steps",
        type=name_list(tuple(MODEL_STEPS), "model step"),
        help="default: pinn32, and resnet50_bs256 on a GPU",
    )
    add(
        "--optimizers",
        type=name_list(tuple(optimizers()), "optimizer"),
        default=list(optimizers()),
        help="comma-separated; adam (the baseline) is always included",
    )
    add(
        "--train-steps",
        type=name_list(tuple(TRAIN_STEPS), "train step"),
        default=list(TRAIN_STEPS),
        help="models of the train-steps section (the paper's variant)",
    )
    add(
        "--only",
        choices=("train-steps",),
        help="time only this section and write it into the JSON already in "
        "--outdir, keeping the other sections",
    )
    add("--note", help="how the machine was set up (what else ran), kept in the JSON")
    add("--resnet-batch", type=positive(int), default=256)
    add("--chunk", type=positive(int), default=5, help="PINN steps per call")
    add("--seed", type=int, default=0)
    add("--rounds", type=positive(int), default=9)
    add(
        "--block-seconds",
        type=positive(float),
        default=0.3,
        help="target time of one entry's block of steps (sets the steps per round)",
    )
    add("--min-iters", type=positive(int), default=3)
    add("--iters", type=positive(int), help="fixed steps per round (no calibration)")
    add("--outdir", help="default: benchmarks/results")
    add(
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
    if timing.BASELINE not in config.optimizers:
        config.optimizers.insert(0, timing.BASELINE)
    if config.model_steps is None:
        config.model_steps = ["pinn32"]
        if jax.default_backend() == "gpu":
            config.model_steps.append("resnet50_bs256")
    if config.outdir is None:
        config.outdir = str(RESULTS)
    return config


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    config = parse_args(argv)
    timing.COMPILER_OPTIONS.clear()
    if config.quick:
        timing.COMPILER_OPTIONS.update(timing.QUICK_COMPILER_OPTIONS)
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
        results["compiles_during_timing"] = timing.TIMED_COMPILES[0]
        results["wall_time_s"] = wall_time_s = time.perf_counter() - start
    outdir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1) + "\n")
    print(f"Wrote {path} ({wall_time_s:.0f} s)")
    return results


if __name__ == "__main__":
    main()
