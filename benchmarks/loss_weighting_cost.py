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

  python benchmarks/loss_weighting_cost.py --seeds 3
  python benchmarks/loss_weighting_cost.py --seeds 1
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
from common import positive, run_metadata  # noqa: E402

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
# Wall-clock time, and the CPU time of the process's threads (which leaves out
# the time other processes held the cores).
CLOCKS = ("wall", "cpu")


def timed_run(problem, model, params, keys, args, weighting, every):
    """(wall-clock s, CPU s) per step of one run, after its first record.

    The first record pays for the compilation; the time from it to the last
    record is steady state (each segment of the weighted runs includes its
    update of the weights).
    """
    stamps = []
    pinn.train(
        problem,
        model.apply,
        params,
        optax.adam(1e-3),
        key=keys,
        steps=args.steps,
        log_every=args.every,
        callback=lambda _: stamps.append((time.perf_counter(), time.process_time())),
        loss_weighting=weighting,
        loss_weighting_every=every,
    )
    steps = (len(stamps) - 1) * args.every
    return tuple((stamps[-1][i] - stamps[0][i]) / steps for i in range(2))


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
    parser.add_argument("--out", type=pathlib.Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.steps < 2 * args.every:
        parser.error("--steps must be at least 2 x --every (two records)")

    problem = pinn.get_problem("poisson", boundary_weight=100.0)
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
    # "grad_norm, step 0 only": the weights as state, updated once before the
    # timed steps, which isolates the cost of the weighted loss itself.
    settings = {
        "none": (None, args.every),
        "grad_norm": ("grad_norm", args.every),
        "grad_norm, step 0 only": ("grad_norm", 10**9),
    }
    per_step = {clock: {name: [] for name in settings} for clock in CLOCKS}
    for _ in range(args.rounds):
        for name, (weighting, every) in settings.items():
            times = timed_run(problem, model, params, keys, args, weighting, every)
            for clock, step in zip(CLOCKS, times, strict=True):
                per_step[clock][name].append(step)
    result = {
        **run_metadata(),
        "settings": vars(args) | {"out": str(args.out)},
        "step_s": per_step,
    }
    for clock, times in per_step.items():
        ratios = {
            name: [t / n for t, n in zip(steps, times["none"], strict=True)]
            for name, steps in times.items()
            if name != "none"
        }
        result[f"{clock}_median_ratio_to_none"] = {
            k: statistics.median(v) for k, v in ratios.items()
        }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "loss_weighting_cost.json"
    saved = json.loads(path.read_text()) if path.exists() else {}
    saved[f"seeds_{args.seeds}"] = result
    path.write_text(json.dumps(saved, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if "ratio" in k}))
    return result


if __name__ == "__main__":
    main()
