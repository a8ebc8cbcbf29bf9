"""What gradient-norm loss weighting costs a PINN step, as a ratio to none.

`pinn.train` on Poisson (tanh MLP, critical init, Adam 1e-3, seeds trained
together by vmap), with ``loss_weighting=None`` and ``"grad_norm"`` (K =
``--every``). Both record every K steps, so both run chunks of the same length
and the difference is the weighting itself: the update of the weights every K
steps, and a loss whose weights are state rather than constants. A run's
compilation is the same at both lengths, so the time of a step in steady state
is (time of a long run - time of a short run) / the difference in steps; the
two settings alternate, ``--rounds`` times, and the medians are reported. Raw
results: ``results/loss_weighting_cost.json``.

  python benchmarks/loss_weighting_cost.py
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
from common import run_metadata  # noqa: E402

RESULTS = pathlib.Path(__file__).resolve().parent / "results"


def timed_run(problem, model, params, keys, steps, weighting, every) -> float:
    start = time.perf_counter()
    pinn.train(
        problem,
        model.apply,
        params,
        optax.adam(1e-3),
        key=keys,
        steps=steps,
        log_every=every,
        loss_weighting=weighting,
        loss_weighting_every=every,
    )
    return time.perf_counter() - start


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--depth", type=int, default=8)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--short", type=int, default=200)
    parser.add_argument("--long", type=int, default=1200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=pathlib.Path, default=RESULTS)
    args = parser.parse_args(argv)

    problem = pinn.get_problem("poisson", boundary_weight=100.0)
    kernel_init, bias_init = init.get_initializers("critical", ACTIVATIONS["tanh"])
    model = MLP(
        depth=args.depth,
        width=50,
        input_bounds=(problem.lower, problem.upper),
        kernel_init=kernel_init,
        bias_init=bias_init,
    )
    init_keys = jax.random.split(jax.random.key(0), args.seeds)
    params = jax.vmap(model.init, in_axes=(0, None))(init_keys, jax.numpy.zeros((1, 2)))
    keys = jax.random.split(jax.random.key(1), args.seeds)
    per_step = {"none": [], "grad_norm": []}
    for _ in range(args.rounds):
        for name, weighting in (("none", None), ("grad_norm", "grad_norm")):
            times = [
                timed_run(problem, model, params, keys, n, weighting, args.every)
                for n in (args.short, args.long)
            ]
            per_step[name].append((times[1] - times[0]) / (args.long - args.short))
    ratios = [
        g / n for g, n in zip(per_step["grad_norm"], per_step["none"], strict=True)
    ]
    result = {
        **run_metadata(),
        "settings": vars(args) | {"out": str(args.out)},
        "step_s": per_step,
        "median_step_s": {k: statistics.median(v) for k, v in per_step.items()},
        "ratio_per_round": ratios,
        "median_ratio": statistics.median(ratios),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "loss_weighting_cost.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: result[k] for k in ("median_step_s", "median_ratio")}))
    return result


if __name__ == "__main__":
    main()
