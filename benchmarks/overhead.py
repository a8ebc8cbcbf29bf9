"""Cost of StableGrad, as a ratio to optax.adam timed in the same process.

Writes ``overhead_<platform>.json`` in ``--outdir`` for ``overhead_report.py``,
each section with the command, date, device and CPU affinity that made it:
``trees``, the update alone on trees shaped like real models', and what XLA
compiles for it (`overhead_updates`); ``train_steps``, whole jitted training
steps (`TRAIN_STEPS`) of the paper's variant (``sgo.prediction_value_and_grad``
+ ``stablegrad("prediction")`` + Adam), the output reference, adam and its
peers, with the ratio of the first two (``prediction_over_output``) and XLA's
cost model of each; ``compile``, compile and update time against adam and AGC.
``--only train-steps`` (or ``compile``) replaces that section of the JSON there.

``--only loss-weighting`` (not in the full run) times `pinn.train` on
``--problem`` (``--seeds`` trained together by vmap) with fixed loss weights,
``"grad_norm"`` every ``--every`` steps and at step 0 only, or the ``--recipes``
as the long-budget campaign trains them; the medians of the per-round ratios of
time per step to the first setting's go to ``loss_weighting_cost.json``.

  python benchmarks/overhead.py                           # ~30 min on 2 cores
  python benchmarks/overhead.py --only compile            # ~6 min
  python benchmarks/overhead.py --quick --outdir /tmp/oh  # smoke run
  python benchmarks/overhead.py --only loss-weighting --seeds 3 --rounds 3
  python benchmarks/overhead.py --only loss-weighting --problem burgers \\
      --recipes adam+warmup+decay,adam+warmup+decay+gradnorm,...
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import operator
import os
import pathlib
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import jaxlib
import optax

import stablegrad_optax as sgo
from stablegrad_optax import models, pinn

import overhead_updates as updates
from overhead_updates import TREES, benchmark_tree, jit, optimizers, timed_section

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "examples"))
from common import name_list, positive, run_metadata  # noqa: E402
from pinn_depth_sweep import problem_and_model  # noqa: E402
from recipes import RECIPES  # noqa: E402

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
PAPER, OUTPUT = "stablegrad(prediction)+adam", "stablegrad(output)+adam"


def xla_cost(lowered) -> dict[str, float]:
    """XLA's cost model of one compiled call (after a run: no new compile)."""
    cost = lowered.compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    keys = ("flops", "transcendentals", "bytes accessed")
    return {key.replace(" ", "_"): float(cost[key]) for key in keys}


def pinn_step(tx, prediction: bool, config: argparse.Namespace):
    """Chunks of ``--chunk`` training steps of a PINN (Poisson, depth-32 width-50
    tanh MLP, 256 + 256 points); with `prediction`, through the ``"data"``
    prediction reference, logging its three readings (as the paper measured)."""
    problem = pinn.get_problem("poisson")
    depth, points = (2, 16) if config.quick else (32, 256)
    bounds = (problem.lower, problem.upper)
    model = models.MLP(depth=depth, width=50, input_bounds=bounds)
    params = model.init(jax.random.key(config.seed), jnp.zeros((1, problem.dim)))
    chunk = jit(
        pinn.make_chunk(
            problem,
            model.apply,
            tx,
            num_interior=points,
            num_boundary=points,
            length=config.chunk,
            prediction_reference="data" if prediction else None,
            log_readings=prediction,
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


def resnet_step(resnet, width: int, batch: int, tx, prediction: bool, seed: int):
    """Training steps of a BN-free `resnet` (CIFAR stem) on one random batch of
    32x32x3 images, cross-entropy on the logits (the prediction); with
    `prediction`, through `sgo.prediction_value_and_grad`."""
    model = resnet(norm="none", num_classes=10, width=width, stem="cifar")
    kx, ky, kp = jax.random.split(jax.random.key(seed), 3)
    images = jax.random.normal(kx, (batch, 32, 32, 3))
    labels = jax.random.randint(ky, (batch,), 0, 10)
    params = model.init(kp, images[:1])["params"]

    predict = lambda p, x, y: model.apply({"params": p}, x)
    xent = optax.softmax_cross_entropy_with_integer_labels
    loss = lambda logits, x, y: xent(logits, y).mean()
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


def resnet50_step(tx, prediction: bool, config: argparse.Namespace):
    width, batch = (8, 4) if config.quick else (64, config.resnet_batch)
    return resnet_step(models.ResNet50, width, batch, tx, prediction, config.seed)


def resnet18_step(tx, prediction: bool, config: argparse.Namespace):
    width, batch = (2, 2) if config.quick else (16, 32)
    return resnet_step(models.ResNet18, width, batch, tx, prediction, config.seed)


PEERS = ("stablegrad(geometric_mean)+adam", "adaptive_grad_clip+adam", "lars")
# Step builders: (tx, prediction, config) -> run(n), which makes n calls and
# blocks; run.final_loss and run.xla_cost() describe it.
TRAIN_STEPS = {
    "pinn32": pinn_step,
    "resnet18_w16": resnet18_step,
    "resnet50_bs256": resnet50_step,  # by default on a GPU only
}


def train_step_optimizers(
    peers: Sequence[str] = PEERS,
) -> dict[str, tuple[optax.GradientTransformation, bool]]:
    """{label: (tx, whether the step passes the prediction reference)}: adam,
    StableGrad's output and prediction references, and `peers`."""
    txs = optimizers()
    return {
        "adam": (txs["adam"], False),
        OUTPUT: (txs["stablegrad+adam"], False),
        PAPER: (optax.chain(sgo.stablegrad("prediction"), txs["adam"]), True),
        **{label: (txs[label], False) for label in PEERS if label in peers},
    }


def benchmark_train_step(name: str, config: argparse.Namespace) -> dict[str, Any]:
    """Train steps of the paper's variant, the output reference, adam and peers."""
    entries = {
        label: TRAIN_STEPS[name](tx, prediction, config)
        for label, (tx, prediction) in train_step_optimizers(config.optimizers).items()
    }
    print(f"{name}: train step, the paper's variant against the output reference")
    steps_per_call = config.chunk if name == "pinn32" else 1
    result = timed_section("train step", entries, config, steps_per_call)
    ratio = updates.ratio_between(result, PAPER, OUTPUT)
    # What XLA's cost model says each compiled call does (whatever else runs).
    cost = {label: run.xla_cost() for label, run in entries.items()}
    ratio["xla_cost"] = {k: cost[PAPER][k] / cost[OUTPUT][k] for k in cost[PAPER]}
    result["prediction_over_output"] = ratio
    result["final_loss"] = {label: run.final_loss for label, run in entries.items()}
    result["xla_cost_per_call"] = cost
    print(
        f"    {PAPER} / {OUTPUT}: {ratio['ratio']:.3f}x, CPU time "
        f"{ratio['cpu_ratio']:.3f}x, flops {ratio['xla_cost']['flops']:.5f}x",
        flush=True,
    )
    return result


def overhead_metadata(config: argparse.Namespace) -> dict[str, Any]:
    """`run_metadata`, with the time of day, the note and the CPU affinity."""
    return run_metadata(
        note=config.note,
        jax_device=str(jax.devices()[0]),
        date=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        python=platform.python_version(),
        jaxlib=jaxlib.__version__,
        # The cores this process may run on (taskset): XLA:CPU's thread pool.
        cpu_affinity=sorted(os.sched_getaffinity(0)),
        cpu_count=os.cpu_count(),
    )


def _section(config: argparse.Namespace, keys, name: str, build) -> dict[str, Any]:
    """A section of the JSON: ``build()`` under `name`, its provenance and config."""
    start, compiles = time.perf_counter(), updates.TIMED_COMPILES[0]
    section = {"meta": overhead_metadata(config)}
    section["config"] = {k: getattr(config, k) for k in keys}
    section[name] = build()
    section["compiles_during_timing"] = updates.TIMED_COMPILES[0] - compiles
    section["wall_time_s"] = time.perf_counter() - start
    return section


def train_steps_section(config: argparse.Namespace) -> dict[str, Any]:
    keys = ("rounds", "block_seconds", "min_iters", "iters", "chunk", "seed")
    steps = lambda: {n: benchmark_train_step(n, config) for n in config.train_steps}
    return _section(config, keys, "models", steps)


def compile_section(config: argparse.Namespace) -> dict[str, Any]:
    keys = ("rounds", "compile_rounds", "block_seconds", "min_iters", "iters", "seed")
    return _section(config, keys, "trees", lambda: updates.compile_costs(config))


def timed_run(problem, model, params, tx, options) -> tuple[float, float]:
    """(wall-clock s, CPU s) per step of one `pinn.train` run after its first
    record, which pays for the compilation."""
    stamps = []
    stamp = lambda _: stamps.append((time.perf_counter(), time.process_time()))
    pinn.train(problem, model.apply, params, tx, callback=stamp, **options)
    steps = (len(stamps) - 1) * options["log_every"]
    return tuple((stamps[-1][i] - stamps[0][i]) / steps for i in range(2))


def weighting_settings(config: argparse.Namespace) -> dict:
    """Name: (transformation, pinn.train's options), timed in turn."""
    if not config.recipes:
        return {
            name: (optax.adam(1e-3), {"loss_weighting": w, "loss_weighting_every": k})
            for name, w, k in (
                ("none", None, config.every),
                ("grad_norm", "grad_norm", config.every),
                ("grad_norm, step 0 only", "grad_norm", 10**9),
            )
        }
    options = lambda recipe: {
        "prediction_reference": recipe.prediction_reference,
        "loss_weighting": recipe.loss_weighting,
        "loss_weighting_every": config.every,
    }
    return {
        name: (RECIPES[name].build(config.steps)(1e-3), options(RECIPES[name]))
        for name in config.recipes
    }


def loss_weighting_section(config: argparse.Namespace) -> dict[str, Any]:
    """``--only loss-weighting``: the ratios of time per step to the first
    setting's, into ``loss_weighting_cost.json``."""
    model = (config.problem, config.depth, 50, "tanh", "critical")
    problem, model = problem_and_model(*model)
    x = jnp.zeros((1, 2))
    if config.seeds == 1:  # one run, no vmap
        params, keys = model.init(jax.random.key(0), x), jax.random.key(1)
    else:
        init_keys = jax.random.split(jax.random.key(0), config.seeds)
        params = jax.vmap(model.init, in_axes=(0, None))(init_keys, x)
        keys = jax.random.split(jax.random.key(1), config.seeds)
    settings = weighting_settings(config)
    run = {"key": keys, "steps": config.steps, "log_every": config.every}
    per_step = {clock: {name: [] for name in settings} for clock in ("wall", "cpu")}
    for _ in range(config.rounds):
        for name, (tx, options) in settings.items():
            times = timed_run(problem, model, params, tx, run | options)
            for clock, step in zip(per_step, times, strict=True):
                per_step[clock][name].append(step)
    first = next(iter(settings))
    keys = ("depth", "seeds", "every", "steps", "rounds", "problem", "recipes")
    used = {k: getattr(config, k) for k in keys} | {"out": config.outdir}
    result = run_metadata(settings=used, step_s=per_step)
    for clock, times in per_step.items():
        result[f"{clock}_median_ratio_to_{first}"] = {
            name: statistics.median(map(operator.truediv, steps, times[first]))
            for name, steps in times.items()
            if name != first
        }
    print(json.dumps({k: v for k, v in result.items() if "ratio" in k}))
    return result


# --only loss-weighting's options and defaults; refused without it.
LOSS_WEIGHTING = {
    "problem": "poisson",
    "depth": 8,
    "seeds": 3,
    "every": 100,
    "steps": 1200,
}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--trees", type=name_list(tuple(TREES), "tree"), default=list(TREES))
    add(
        "--optimizers",
        type=name_list(tuple(optimizers()), "optimizer"),
        default=list(optimizers()),
        help="comma-separated; adam (the baseline) is always included",
    )
    gpu = jax.default_backend() == "gpu"
    add(
        "--train-steps",
        type=name_list(tuple(TRAIN_STEPS), "train step"),
        default=["pinn32", "resnet18_w16", *(["resnet50_bs256"] if gpu else [])],
        help="default: pinn32, resnet18_w16, and resnet50_bs256 on a GPU",
    )
    add(
        "--only",
        choices=("train-steps", "compile", "loss-weighting"),
        help="time only this section and write it into the JSON already in "
        "--outdir, keeping the other sections (loss-weighting: its own JSON)",
    )
    # --only loss-weighting: the PINN, the run's length and the records' interval
    add("--problem", choices=sorted(pinn.PROBLEMS))
    for name in ("depth", "seeds", "every", "steps"):
        add(f"--{name}", type=positive(int), help=f"default {LOSS_WEIGHTING[name]}")
    add("--recipes", type=name_list(tuple(RECIPES), "recipe"))
    add("--note", help="how the machine was set up (what else ran), kept in the JSON")
    add("--resnet-batch", type=positive(int), default=256)
    add("--chunk", type=positive(int), default=5, help="PINN steps per call")
    add("--seed", type=int, default=0)
    add("--rounds", type=positive(int), default=9)
    add("--compile-rounds", type=positive(int), default=3)
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
    given = [f"--{n}" for n in (*LOSS_WEIGHTING, "recipes") if vars(config)[n]]
    if given and config.only != "loss-weighting":
        parser.error(f"{', '.join(given)}: only with --only loss-weighting")
    for name, value in LOSS_WEIGHTING.items():
        setattr(config, name, vars(config)[name] or value)
    if config.only == "loss-weighting" and config.steps < 2 * config.every:
        parser.error("--steps must be at least 2 x --every (two records)")
    if config.quick:
        if config.outdir is None:
            parser.error("--quick needs --outdir (to keep the real results)")
        config.rounds, config.iters, config.chunk, config.compile_rounds = 2, 2, 2, 1
    if updates.BASELINE not in config.optimizers:  # adam, the baseline: always timed
        config.optimizers.insert(0, updates.BASELINE)
    if config.outdir is None:
        config.outdir = str(RESULTS)
    return config


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    config = parse_args(argv)
    updates.COMPILER_OPTIONS.clear()
    if config.quick:
        updates.COMPILER_OPTIONS.update(updates.QUICK_COMPILER_OPTIONS)
    start = time.perf_counter()
    meta = overhead_metadata(config)
    print(f"JAX devices: {jax.devices()}; {meta['device']}", flush=True)
    outdir = pathlib.Path(config.outdir)
    path = outdir / f"overhead_{jax.default_backend()}.json"
    if config.only:
        key = config.only.replace("-", "_")
        if config.only == "loss-weighting":  # its own file, an entry per setting
            path = outdir / "loss_weighting_cost.json"
            cell = f"recipes_{config.problem}_{config.depth}"
            key = cell if config.recipes else f"seeds_{config.seeds}"
        results = json.loads(path.read_text()) if path.exists() else {}
        section = {
            "train-steps": train_steps_section,
            "compile": compile_section,
            "loss-weighting": loss_weighting_section,
        }
        results[key] = section[config.only](config)
        wall_time_s = time.perf_counter() - start
    else:
        results = {"meta": meta, "config": vars(config)}
        results["trees"] = {name: benchmark_tree(name, config) for name in config.trees}
        results["train_steps"] = train_steps_section(config)
        results["compile"] = compile_section(config)
        results["compiles_during_timing"] = updates.TIMED_COMPILES[0]
        results["wall_time_s"] = wall_time_s = time.perf_counter() - start
    outdir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1) + "\n")
    print(f"Wrote {path} ({wall_time_s:.0f} s)")
    return results


if __name__ == "__main__":
    main()
