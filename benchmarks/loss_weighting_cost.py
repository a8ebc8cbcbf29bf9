"""What gradient-norm loss weighting costs a PINN step, as a ratio to none.

`pinn.train` on Poisson (tanh MLP, critical init, Adam 1e-3; the seeds trained
together by vmap, or with ``--seeds 1`` one run without) with
``loss_weighting=None``, ``"grad_norm"`` (K = ``--every``) and ``"grad_norm"``
updated at step 0 only (the weighted loss without the weights' update); with
``--recipes``, those recipes as the long-budget campaign trains them on
``--problem``. The settings alternate ``--rounds`` times; the medians of the
ratios of time per step (first to last record, after compilation) to the first
setting's, by wall-clock and by CPU time, go to ``results/loss_weighting_cost.json``
under ``seeds_<n>`` (or ``recipes_<problem>_<depth>``, which the long-budget page
reads).

  python benchmarks/loss_weighting_cost.py --seeds 3
  python benchmarks/loss_weighting_cost.py --problem burgers --recipes \
      adam+warmup+decay,adam+warmup+decay+gradnorm,...
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import sys
import time
from collections.abc import Sequence

import jax
import optax

from stablegrad_optax import pinn

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "examples"))
from common import name_list, positive, run_metadata  # noqa: E402
from pinn_depth_sweep import problem_and_model  # noqa: E402
from recipes import RECIPES  # noqa: E402

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
# Wall-clock time, and the CPU time of the process's threads (which leaves out
# the time other processes held the cores).
CLOCKS = ("wall", "cpu")


def timed_run(problem, model, params, tx, options) -> tuple[float, float]:
    """(wall-clock s, CPU s) per step of one `pinn.train` run after its first
    record, which pays for the compilation."""
    stamps = []
    stamp = lambda _: stamps.append((time.perf_counter(), time.process_time()))
    pinn.train(problem, model.apply, params, tx, callback=stamp, **options)
    steps = (len(stamps) - 1) * options["log_every"]
    return tuple((stamps[-1][i] - stamps[0][i]) / steps for i in range(2))


def timed_settings(args) -> dict:
    """Name: (transformation, pinn.train's options), timed in turn."""
    if not args.recipes:
        return {
            name: (optax.adam(1e-3), {"loss_weighting": w, "loss_weighting_every": k})
            for name, w, k in (
                ("none", None, args.every),
                ("grad_norm", "grad_norm", args.every),
                ("grad_norm, step 0 only", "grad_norm", 10**9),
            )
        }
    options = lambda recipe: {
        "prediction_reference": recipe.prediction_reference,
        "loss_weighting": recipe.loss_weighting,
        "loss_weighting_every": args.every,
    }
    return {
        name: (RECIPES[name].build(args.steps)(1e-3), options(RECIPES[name]))
        for name in args.recipes
    }


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("--depth", type=positive(int), default=8)
    add("--seeds", type=positive(int), default=3)
    add("--every", type=positive(int), default=100)
    add("--steps", type=positive(int), default=1200)
    add("--rounds", type=positive(int), default=5)
    add("--problem", choices=sorted(pinn.PROBLEMS), default="poisson")
    add("--recipes", type=name_list(tuple(RECIPES), "recipe"))
    add("--out", type=pathlib.Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.steps < 2 * args.every:
        parser.error("--steps must be at least 2 x --every (two records)")

    problem, model = problem_and_model(args.problem, args.depth, 50, "tanh", "critical")
    x = jax.numpy.zeros((1, 2))
    if args.seeds == 1:  # one run, no vmap
        params, keys = model.init(jax.random.key(0), x), jax.random.key(1)
    else:
        init_keys = jax.random.split(jax.random.key(0), args.seeds)
        params = jax.vmap(model.init, in_axes=(0, None))(init_keys, x)
        keys = jax.random.split(jax.random.key(1), args.seeds)
    settings = timed_settings(args)
    run = {"key": keys, "steps": args.steps, "log_every": args.every}
    per_step = {clock: {name: [] for name in settings} for clock in CLOCKS}
    for _ in range(args.rounds):
        for name, (tx, options) in settings.items():
            times = timed_run(problem, model, params, tx, run | options)
            for clock, step in zip(CLOCKS, times, strict=True):
                per_step[clock][name].append(step)
    first = next(iter(settings))
    result = run_metadata(settings=vars(args) | {"out": str(args.out)}, step_s=per_step)
    for clock, times in per_step.items():
        result[f"{clock}_median_ratio_to_{first}"] = {
            name: statistics.median(
                t / n for t, n in zip(steps, times[first], strict=True)
            )
            for name, steps in times.items()
            if name != first
        }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "loss_weighting_cost.json"
    saved = json.loads(path.read_text()) if path.exists() else {}
    key = f"recipes_{args.problem}_{args.depth}" if args.recipes else None
    saved[key or f"seeds_{args.seeds}"] = result
    path.write_text(json.dumps(saved, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if "ratio" in k}))
    return result


if __name__ == "__main__":
    main()
