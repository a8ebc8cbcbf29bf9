"""StableGrad inside DeepXDE (JAX backend): Adam vs StableGrad + Adam, and the SGD pair.

Trains DeepXDE's Burgers problem and a 2-D Poisson problem with deeper FNNs
than DeepXDE's examples use, four optimizers from the same initial network and
the same collocation points. Each optimizer takes its learning rate from a
small grid by the training loss of a short run (never the test error), then
trains for the full budget; a results table, JSON and figures go to --outdir.

Usage::

  DDE_BACKEND=jax python examples/deepxde/main.py
  python examples/deepxde/main.py --problems burgers --depths 16 --iterations 5000

In your own DeepXDE code the recipe is two lines::

  import stablegrad_optax as sgo
  model.compile(sgo.stablegrad_adam(1e-3))   # or optax.chain(sgo.stablegrad(), ...)

DeepXDE's JAX backend has no L-BFGS (`model.compile("L-BFGS")` fails there), so
no L-BFGS phase follows the first-order one here.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time
from collections.abc import Sequence

os.environ.setdefault("DDE_BACKEND", "jax")  # before deepxde is imported
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # common.py

import deepxde as dde  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import stablegrad_optax as sgo  # noqa: E402

import callbacks  # noqa: E402
import problems  # noqa: E402
import report  # noqa: E402
from common import at_least, name_list, run_metadata  # noqa: E402

OPTIMIZERS = {
    "adam": optax.adam,
    "stablegrad+adam": sgo.stablegrad_adam,
    "sgd-momentum": lambda lr: optax.sgd(lr, momentum=0.9),
    "stablegrad+sgd-momentum": lambda lr: sgo.stablegrad_sgd(lr, momentum=0.9),
}
# The optimizers whose StableGrad state the run logs (layer statistics).
WITH_STABLEGRAD = ("stablegrad+adam", "stablegrad+sgd-momentum")
GRIDS = {
    "adam": (3e-4, 1e-3, 3e-3),
    "stablegrad+adam": (3e-4, 1e-3, 3e-3),
    "sgd-momentum": (1e-3, 1e-2, 1e-1),
    "stablegrad+sgd-momentum": (1e-3, 1e-2, 1e-1),
}


def csv(kind):
    return lambda text: [kind(v) for v in text.split(",")]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--problems",
        type=name_list(tuple(problems.PROBLEMS), "problem"),
        default=["burgers", "poisson"],
    )
    parser.add_argument("--depths", type=csv(at_least(1)), default=[8, 16])
    parser.add_argument("--width", type=at_least(1), default=32)
    parser.add_argument(
        "--optimizers",
        type=name_list(tuple(OPTIMIZERS), "optimizer"),
        default=list(OPTIMIZERS),
    )
    parser.add_argument("--iterations", type=at_least(1), default=2000)
    parser.add_argument(
        "--pick-iterations",
        type=at_least(1),
        default=200,
        help="iterations of each short run that picks a learning rate from its grid",
    )
    parser.add_argument("--num-domain", type=at_least(1), default=1000)
    parser.add_argument("--num-boundary", type=at_least(0), default=100)
    parser.add_argument("--num-initial", type=at_least(0), default=100)
    parser.add_argument("--log-every", type=at_least(1), default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--outdir", default="deepxde_out")
    return parser.parse_args(argv)


def build_model(setup, depth: int, width: int, seed: int) -> dde.Model:
    """A tanh FNN of `depth` hidden layers; the seed fixes its initial weights."""
    dde.config.set_random_seed(seed)
    layers = [setup.input_dim] + [width] * depth + [1]
    return dde.Model(setup.data, dde.nn.FNN(layers, "tanh", "Glorot normal"))


def train_one(setup, args, depth, optimizer, lr, iterations, log=True) -> dict:
    model = build_model(setup, depth, args.width, args.seed)
    model.compile(OPTIMIZERS[optimizer](lr))
    logger = []
    if log and optimizer in WITH_STABLEGRAD:
        logger = [callbacks.LayerStatistics(every=args.log_every)]
    start = time.perf_counter()
    history, _ = model.train(
        iterations=iterations,
        display_every=args.log_every,
        callbacks=logger,
        verbose=0,
    )
    seconds = time.perf_counter() - start
    losses = np.asarray(history.loss_train, np.float64)
    final = float(losses[-1].sum())
    return {
        "lr": lr,
        "final_loss": final if np.isfinite(final) else None,
        "loss_terms": [float(v) for v in losses[-1]],
        "loss_curve": {
            "steps": [int(s) for s in history.steps],
            "loss": [float(v) if np.isfinite(v) else None for v in losses.sum(1)],
        },
        "rel_l2": problems.relative_l2(model, setup) if np.isfinite(final) else None,
        "seconds": seconds,
        "layer_std": logger[0].records if logger else [],
    }


def choose(setup, args, depth, optimizer) -> tuple[float, dict]:
    """The grid's learning rate with the lowest finite short-run training loss."""
    grid = GRIDS[optimizer]
    if len(grid) == 1:
        return grid[0], {}
    losses = {
        lr: train_one(setup, args, depth, optimizer, lr, args.pick_iterations, False)[
            "final_loss"
        ]
        for lr in grid
    }
    finite = {lr: v for lr, v in losses.items() if v is not None}
    return (min(finite, key=finite.get) if finite else grid[0]), losses


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    callbacks.require_jax_backend()
    outdir = pathlib.Path(args.outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    runs = []
    for name in args.problems:
        setup = problems.PROBLEMS[name](
            args.num_domain, args.num_boundary, args.num_initial
        )
        for depth in args.depths:
            for optimizer in args.optimizers:
                lr, grid = choose(setup, args, depth, optimizer)
                run = train_one(setup, args, depth, optimizer, lr, args.iterations)
                run |= {"problem": name, "depth": depth, "optimizer": optimizer}
                run["grid_losses"] = {f"{k:g}": v for k, v in grid.items()}
                runs.append(run)
                error = "diverged" if run["rel_l2"] is None else f"{run['rel_l2']:.4g}"
                print(
                    f"{name} depth {depth} {optimizer} lr {lr:g}: rel-L2 {error} "
                    f"({run['seconds']:.0f} s)",
                    flush=True,
                )
    settings = {k: v for k, v in vars(args).items() if k not in ("outdir", "problems")}
    meta = run_metadata(deepxde=dde.__version__, settings=settings)
    results = {"meta": meta, "runs": runs}
    (outdir / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    report.write(results, outdir)
    print((outdir / "results.md").read_text())
    return results


if __name__ == "__main__":
    main()
