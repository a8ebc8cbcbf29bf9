"""What gradient-norm loss weighting costs a PINN step, as a ratio to none.

`pinn.train` on Poisson (tanh MLP, critical init, Adam 1e-3; seeds trained
together by vmap, or with ``--seeds 1`` one run without vmap), under three
settings: ``loss_weighting=None``; ``"grad_norm"`` with K = ``--every``; and
``"grad_norm"`` updated at step 0 only, which isolates what a loss whose
weights are state (not constants) costs from the weights' update. All record
every K steps, so all run chunks of the same length. The time per step is
taken from the first record (after the compilation) to the last; the settings
alternate, ``--rounds`` times, and the medians of the ratios to none are
reported, by wall-clock time and by the process's CPU time. Raw results:
``results/loss_weighting_cost.json``, one entry per ``--seeds``.

With ``--recipes``, the settings are those recipes of the registry instead,
each as the long-budget campaign trains it (its schedule, prediction reference
and loss weighting, peak lr 1e-3) on ``--problem``, the ratios to the first;
the entry is ``recipes_<problem>_<depth>``, which the campaign's page reads for
its time column.

  python benchmarks/loss_weighting_cost.py --seeds 3
  python benchmarks/loss_weighting_cost.py --seeds 1
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

from stablegrad_optax import init, pinn
from stablegrad_optax.models import ACTIVATIONS, MLP

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "examples"))
from common import name_list, positive, run_metadata  # noqa: E402
from pinn_depth_sweep import BOUNDARY_WEIGHTS  # noqa: E402
from recipes import RECIPES  # noqa: E402

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
# Wall-clock time, and the CPU time of the process's threads (which leaves out
# the time other processes held the cores).
CLOCKS = ("wall", "cpu")


def timed_run(problem, model, params, keys, args, setting):
    """(wall-clock s, CPU s) per step of one run, after its first record.

    `setting` is (transformation, pinn.train's options). The first record
    pays for the compilation; the time from it to the last record is steady
    state (each segment of the weighted runs includes its update of the
    weights).
    """
    tx, options = setting
    stamps = []
    pinn.train(
        problem,
        model.apply,
        params,
        tx,
        key=keys,
        steps=args.steps,
        log_every=args.every,
        callback=lambda _: stamps.append((time.perf_counter(), time.process_time())),
        **options,
    )
    steps = (len(stamps) - 1) * args.every
    return tuple((stamps[-1][i] - stamps[0][i]) / steps for i in range(2))


def weighting_settings(args) -> dict:
    """None, grad_norm every K, and grad_norm updated at step 0 only (the
    weights as state, which isolates the cost of the weighted loss itself)."""
    options = lambda weighting, every: {
        "loss_weighting": weighting,
        "loss_weighting_every": every,
    }
    return {
        "none": (optax.adam(1e-3), options(None, args.every)),
        "grad_norm": (optax.adam(1e-3), options("grad_norm", args.every)),
        "grad_norm, step 0 only": (optax.adam(1e-3), options("grad_norm", 10**9)),
    }


def recipe_settings(args) -> dict:
    """Each recipe as the campaign trains it: its schedule over --steps, its
    prediction reference and loss weighting (K = --every), peak lr 1e-3."""
    settings = {}
    for name in args.recipes:
        recipe = RECIPES[name]
        options = {
            "prediction_reference": recipe.prediction_reference,
            "loss_weighting": recipe.loss_weighting,
            "loss_weighting_every": args.every,
        }
        settings[name] = (recipe.build(args.steps)(1e-3), options)
    return settings


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for flag, default in (
        ("--depth", 8),
        ("--seeds", 3),
        ("--every", 100),
        ("--steps", 1200),
        ("--rounds", 5),
    ):
        parser.add_argument(flag, type=positive(int), default=default)
    parser.add_argument("--problem", choices=sorted(pinn.PROBLEMS), default="poisson")
    parser.add_argument("--recipes", type=name_list(tuple(RECIPES), "recipe"))
    parser.add_argument("--out", type=pathlib.Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.steps < 2 * args.every:
        parser.error("--steps must be at least 2 x --every (two records)")

    problem = pinn.get_problem(
        args.problem, boundary_weight=BOUNDARY_WEIGHTS[args.problem]
    )
    kernel_init, bias_init = init.get_initializers("critical", ACTIVATIONS["tanh"])
    model = MLP(
        depth=args.depth,
        width=50,
        input_bounds=(problem.lower, problem.upper),
        kernel_init=kernel_init,
        bias_init=bias_init,
    )
    x = jax.numpy.zeros((1, 2))
    if args.seeds == 1:  # one run, no vmap
        params, keys = model.init(jax.random.key(0), x), jax.random.key(1)
    else:
        init_keys = jax.random.split(jax.random.key(0), args.seeds)
        params = jax.vmap(model.init, in_axes=(0, None))(init_keys, x)
        keys = jax.random.split(jax.random.key(1), args.seeds)
    settings = recipe_settings(args) if args.recipes else weighting_settings(args)
    per_step = {clock: {name: [] for name in settings} for clock in CLOCKS}
    for _ in range(args.rounds):
        for name, setting in settings.items():
            times = timed_run(problem, model, params, keys, args, setting)
            for clock, step in zip(CLOCKS, times, strict=True):
                per_step[clock][name].append(step)
    first = next(iter(settings))
    result = {
        **run_metadata(),
        "settings": vars(args) | {"out": str(args.out)},
        "step_s": per_step,
    }
    for clock, times in per_step.items():
        ratios = {
            name: [t / n for t, n in zip(steps, times[first], strict=True)]
            for name, steps in times.items()
            if name != first
        }
        result[f"{clock}_median_ratio_to_{first}"] = {
            k: statistics.median(v) for k, v in ratios.items()
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
