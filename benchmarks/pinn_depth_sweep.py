"""Deep-PINN depth sweep: does StableGrad make deep PINNs train, and train better?

Per problem, depth, init and optimizer (a *cell*; the seed sets the parameters
and the points), stage one runs the optimizer family's lr grid on ``--tune-seed``,
stage two the other seeds at the rate each protocol picks
(`pinn_depth_sweep_results`). Each stage of a cell is one vmapped batch (the lr
an `optax.inject_hyperparams` leaf) whose rows go to ``--results`` as it ends;
runs already there are skipped, so the sweep resumes where it stopped.

  python benchmarks/pinn_depth_sweep.py --optimizers adam,stablegrad+adam
  python benchmarks/pinn_depth_sweep_report.py   # its pages and figures
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import pathlib
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from stablegrad_optax import init, pinn
from stablegrad_optax.models import ACTIVATIONS, MLP

import csvrows
import pinn_depth_sweep_results as results
import recipes

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "examples"))
from common import at_least, code_version, device_name, name_list, positive  # noqa: E402

# (grid family, problem) -> learning rates; problem None: every problem.
LR_GRIDS = {
    # Adam-like steps are about lr per weight whatever the gradient's scale.
    ("adaptive", None): (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3),
    # SGD's step is lr times the gradient, whose scale follows the loss: per-layer
    # std ~1e2-1e3 for Poisson and Helmholtz (residual ~1e3-1e4, boundary weight
    # 100), where SGD diverges at Adam's rates; ~1e-3-1 for Burgers.
    ("sgd", None): (1e-7, 3e-7, 1e-6, 3e-6, 1e-5, 3e-5),
    ("sgd", "burgers"): (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2),
}
OPTIMIZERS = recipes.RECIPES  # `--optimizers` takes these names
# The boundary term's weight: 100 for the elliptic problems, whose residual is
# ~1e3-1e4 at init and drowns an unweighted boundary term (measured so on
# Poisson); 1 for Burgers, as in Raissi et al. (2019).
BOUNDARY_WEIGHTS = {"burgers": 1.0, "poisson": 100.0, "helmholtz": 100.0}
EXTRA_POINTS = 2  # at most this many rates beyond a family's grid, added by the runner
USUAL_INIT = "glorot"  # Raissi et al.'s PINNs (Xavier); Flax's default is LeCun.


def grid_of(optimizer: str, problem: str) -> tuple[float, ...]:
    """The learning-rate grid of an optimizer (by its family) on a problem."""
    family = OPTIMIZERS[optimizer].grid
    return LR_GRIDS.get((family, problem), LR_GRIDS[family, None])


def _rate(text: str) -> float:
    """An argparse type: a learning rate, a finite number > 0."""
    value = positive(float)(text)
    if not np.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be finite, got {text!r}")
    return value


def _numbers(item: Callable[[str], Any]) -> Callable[[str], list]:
    """An argparse type: a non-empty comma-separated list of `item`s."""

    def parse(text: str) -> list:
        if not (values := [item(v) for v in text.split(",") if v]):
            raise argparse.ArgumentTypeError(f"expected a list, got {text!r}")
        return values

    return parse


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    problems = name_list(tuple(pinn.PROBLEMS), "problem")
    add("--problems", type=problems, default="burgers,poisson,helmholtz")
    add("--depths", type=_numbers(at_least(1)), default="4,8,16,32,64")
    add("--width", type=positive(int), default=50)
    add("--activation", choices=sorted(ACTIVATIONS), default="tanh")
    inits = name_list(tuple(init.INITIALIZERS), "initialiser")
    add("--inits", type=inits, default=f"{USUAL_INIT},critical")
    optimizers = name_list(tuple(OPTIMIZERS), "optimizer")
    add("--optimizers", type=optimizers, default=",".join(OPTIMIZERS))
    add("--seeds", type=_numbers(at_least(0)), default="0,1,2,3")
    add("--tune-seed", type=int, default=results.TUNE_SEED)
    add("--tune-depth", type=positive(int), default=results.TUNE_DEPTH)
    add("--steps", type=positive(int), default=1500)
    add("--eval-every", type=positive(int), default=100)
    add("--num-interior", type=positive(int), default=256)
    add("--num-boundary", type=positive(int), default=256)
    add("--eval-resolution", type=positive(int), default=101)
    add("--num-validation", type=positive(int), default=1024)
    add("--lr", type=_rate, help="one lr for every optimizer and seed, no tuning")
    add(
        "--lrs",
        type=_numbers(_rate),
        help="lrs instead of each optimizer's grid (runs for their own --results)",
    )
    add(
        "--no-extend-grids",
        dest="extend_grids",
        action="store_false",
        help=f"add no point (by default up to {EXTRA_POINTS} per group) past a "
        "grid's edge where a tuned rate sits",
    )
    add("--results", type=pathlib.Path, default=results.RESULTS)
    add("--max-minutes", type=float, help="start no batch after that long")
    args = parser.parse_args(argv)
    if args.lr is not None and args.lrs:
        parser.error("--lr and --lrs exclude each other")
    if args.lr is None and args.tune_seed not in args.seeds:
        parser.error(f"--tune-seed {args.tune_seed} is not in --seeds {args.seeds}")
    return args


def group(problem: str, init_name: str, optimizer: str, args) -> dict[str, Any]:
    """The columns every run of one (problem, init, optimizer) group shares."""
    return {
        "problem": problem,
        "init": init_name,
        "optimizer": optimizer,
        "boundary_weight": BOUNDARY_WEIGHTS[problem],
        **{name: getattr(args, name) for name in results.SETTING},
    }


def problem_and_model(name: str, depth: int, width: int, activation: str, init_name):
    """A problem of the sweep (with its boundary weight) and the MLP that learns it."""
    problem = pinn.get_problem(name, boundary_weight=BOUNDARY_WEIGHTS[name])
    kernel_init, bias_init = init.get_initializers(init_name, ACTIVATIONS[activation])
    model = MLP(
        depth=depth,
        width=width,
        activation=activation,
        input_bounds=(problem.lower, problem.upper),
        kernel_init=kernel_init,
        bias_init=bias_init,
    )
    return problem, model


def run_batch(problem_name, depth, init_name, optimizer, runs, args) -> list[dict]:
    """Trains the (learning rate, seed) `runs` of one cell together; their rows,
    each with its ``history`` (every ``eval_every`` steps: the test error, the
    loss, the per-layer gradient-std imbalance and minimum)."""
    cell = group(problem_name, init_name, optimizer, args)
    problem, model = problem_and_model(
        problem_name, depth, args.width, args.activation, init_name
    )
    seeds = jnp.asarray([seed for _, seed in runs])
    keys = jax.vmap(lambda s: jax.random.split(jax.random.key(s)))(seeds)
    init_keys, data_keys = keys.swapaxes(0, 1)
    x = jnp.zeros((1, problem.dim))
    params = jax.vmap(model.init, in_axes=(0, None))(init_keys, x)
    spec = OPTIMIZERS[optimizer]
    tx = optax.inject_hyperparams(spec.build(args.steps))(learning_rate=1.0)
    opt_state = jax.vmap(tx.init)(params)
    lrs = jnp.asarray([lr for lr, _ in runs], jnp.float32)
    opt_state.hyperparams["learning_rate"] = lrs

    start = time.perf_counter()
    sizes = ("steps", "num_interior", "num_boundary", "eval_resolution")
    params, records = pinn.train(
        problem,
        model.apply,
        params,
        tx,
        key=data_keys,
        log_every=args.eval_every,
        opt_state=opt_state,
        prediction_reference=spec.prediction_reference,
        log_readings=True,
        loss_weighting=spec.loss_weighting,
        **{name: getattr(args, name) for name in sizes},
    )
    # Validation: random points (a fixed key, apart from every seed).
    points = problem.sample_interior(jax.random.key(2**31 - 1), args.num_validation)
    exact = jnp.asarray(problem.exact(np.asarray(points)))
    prediction = jax.vmap(model.apply, in_axes=(0, None))(params, points)
    val = pinn.relative_l2(prediction, exact)
    wall = time.perf_counter() - start

    last = records[-1]
    rows = []
    for i, (lr, seed) in enumerate(runs):
        history = {
            "step": [r["step"] for r in records],
            "rel_l2": [r["rel_l2"][i] for r in records],
            "loss": [r["loss"][i] for r in records],
            "grad_imbalance": [r["imbalance"][i] for r in records],
            "min_layer_grad_std": [
                min(v[i] for v in r["grad_std"].values()) for r in records
            ],
        }
        for name in ("loss_weights", "reference_scale"):  # per term, per reading
            if name in last:
                history[name] = {
                    k: [r[name][k][i] for r in records] for k in last[name]
                }
        finite = [v for v in history["rel_l2"] if np.isfinite(v)]
        rows.append(
            {
                **cell,
                "depth": depth,
                "lr": lr,
                "seed": seed,
                "final_rel_l2": last["rel_l2"][i],
                "best_rel_l2": min(finite, default=float("nan")),
                "val_rel_l2": float(val[i]),
                "final_loss": last["loss"][i],
                "loss_residual": last["residual"][i],
                "loss_boundary": last["boundary"][i],
                "loss_initial": last.get("initial", [float("nan")] * len(runs))[i],
                "min_layer_grad_std": float(
                    np.min([v[i] for v in last["grad_std"].values()])
                ),
                "grad_imbalance": last["imbalance"][i],
                "diverged": last["diverged"][i] or last["step"] < args.steps,
                "wall_s": wall / len(runs),
                "batch_runs": len(runs),
                "history": history,
            }
        )
    return rows


def cell_plan(args: argparse.Namespace):
    """(problem, init, optimizer, depth, stage) in the order they run: tuning at
    the tuning depth, then the others, then the seeds (with ``--lr``: no tuning)."""
    depths = [args.tune_depth] + [d for d in args.depths if d != args.tune_depth]
    for group in itertools.product(args.problems, args.inits, args.optimizers):
        if args.lr is None:
            yield from ((*group, depth, "tune") for depth in depths)
        yield from ((*group, depth, "seeds") for depth in args.depths)


def _neighbour(lr: float, up: bool) -> float:
    """The next point of a half-decade grid (1, 3, 10, 30, ...) above or below."""
    mantissa = float(results.lr_text(lr)[0])
    factor = 10 / 3 if (mantissa >= 3) == up else 3  # 1 -> 3 -> 10 and back
    return float(results.lr_text(lr * factor if up else lr / factor))


def group_grid(rows, cell: dict, args) -> list[float]:
    """A group's learning rates: ``--lrs``, or the family's grid, the rates run on
    the tuning seed, and the next point past an edge where a depth's tuned rate
    sits (run at every depth; while fewer than `EXTRA_POINTS` lie beyond it)."""
    if args.lrs:
        return sorted(args.lrs)
    base = grid_of(cell["optimizer"], cell["problem"])
    tuned = results.select(rows, seed=args.tune_seed, **cell)
    grid = sorted(set(base) | {r["lr"] for r in tuned})
    extra = [lr for lr in grid if not min(base) <= lr <= max(base)]
    if not args.extend_grids or len(extra) >= EXTRA_POINTS:
        return grid
    for depth in args.depths:
        lr = results.choose_lr(rows, grid, depth=depth, seed=args.tune_seed, **cell)
        if lr is not None and lr in (grid[0], grid[-1]):
            return sorted([*grid, _neighbour(lr, up=lr == grid[-1])])
    return grid


def pending_runs(rows, problem, init_name, optimizer, depth, stage, args):
    """The (lr, seed) runs of one stage of a cell that the file does not hold."""
    cell = group(problem, init_name, optimizer, args)
    if args.lr is not None:
        wanted = [(args.lr, seed) for seed in args.seeds]
    elif stage == "tune":
        wanted = [(lr, args.tune_seed) for lr in group_grid(rows, cell, args)]
    else:
        grid = group_grid(rows, cell, args)
        tune = {"tune_depth": args.tune_depth, "tune_seed": args.tune_seed}
        lrs = {
            results.protocol_lr(rows, grid, protocol, depth=depth, **tune, **cell)
            for protocol in results.PROTOCOLS
        }
        seeds = [seed for seed in args.seeds if seed != args.tune_seed]
        wanted = itertools.product(sorted(lrs - {None}), seeds)
    return [
        (lr, seed)
        for lr, seed in wanted
        if not results.select(rows, depth=depth, lr=lr, seed=seed, **cell)
    ]


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    meta = {"device": device_name(), "git_commit": code_version()}
    print(f"{meta}; results: {args.results}", flush=True)
    if csvrows.drop_partial_line(args.results):
        print("dropped a partly written last line of the results file", flush=True)
    start = time.perf_counter()
    rows = results.read_rows(args.results)
    # Passes over the plan until one runs nothing: a grid widened by a later
    # depth's tuned rate sends the earlier depths back for the new point.
    ran = True
    while ran:
        ran = False
        for problem, init_name, optimizer, depth, stage in cell_plan(args):
            runs = pending_runs(rows, problem, init_name, optimizer, depth, stage, args)
            if not runs:
                continue
            elapsed = (time.perf_counter() - start) / 60
            if args.max_minutes is not None and elapsed >= args.max_minutes:
                print(f"stopping after {elapsed:.1f} min (--max-minutes)", flush=True)
                return
            today = datetime.date.today().isoformat()
            new = [
                {**row, **meta, "date": today}
                for row in run_batch(problem, depth, init_name, optimizer, runs, args)
            ]
            results.append_history(args.results, new)
            results.append_rows(args.results, new)
            rows, ran = results.read_rows(args.results), True
            errors = " ".join(
                f"{results.lr_text(r['lr'])}/s{r['seed']}:{r['final_rel_l2']:.3g}"
                for r in new
            )
            print(
                f"[{elapsed:6.1f} min] {problem} depth {depth} {init_name} "
                f"{optimizer} {stage} ({new[0]['wall_s'] * len(new):.0f} s): {errors}",
                flush=True,
            )


if __name__ == "__main__":
    sys.exit(main())
