"""Deep MLP regression: StableGrad against Adam and SGD with momentum.

A deep, narrow tanh MLP is fitted full batch to ``sin(3 x1) cos(2 x2) + 0.5 x1
x2`` on ``[-1, 1]^2`` by each recipe of ``common.OPTIMIZERS``, from the same
parameters on the same data; each picks its learning rate from its grid by
final validation MSE (a run whose loss turns NaN is reported as diverged).
Writes to ``--outdir``: ``results.json`` (every run, its curves, the per-layer
gradient std at init), ``table.md`` (one row per optimizer at its chosen rate)
and ``val_mse.png`` (validation MSE against step).

  python benchmarks/mlp_regression.py          # default: depth 16, 600 steps
  python benchmarks/mlp_regression.py --quick  # smoke test, a few seconds
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import pathlib
import sys
import time
from collections.abc import Sequence
from operator import itemgetter
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from matplotlib.figure import Figure
from tqdm.auto import tqdm

import stablegrad_optax as sgo
from stablegrad_optax.models import MLP

import mdtables
import recipes

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "examples"))
from common import OPTIMIZERS, run_metadata  # noqa: E402

ADAM_LRS = (3e-4, 1e-3, 3e-3, 1e-2)
SGD_LRS = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1)


def create_data(key: jax.Array, num_train: int, num_val: int) -> dict[str, jax.Array]:
    """Train and validation sets: x uniform in [-1, 1]^2, the target (n, 1)."""
    data = {}
    keys = jax.random.split(key)
    for split, k, n in zip(("train", "val"), keys, (num_train, num_val), strict=True):
        x = jax.random.uniform(k, (n, 2), minval=-1.0, maxval=1.0)
        x1, x2 = x[:, :1], x[:, 1:]
        y = jnp.sin(3 * x1) * jnp.cos(2 * x2) + 0.5 * x1 * x2
        data[f"x_{split}"], data[f"y_{split}"] = x, y
    return data


def mse(model: nn.Module, params: Any, x: jax.Array, y: jax.Array) -> jax.Array:
    return jnp.mean((model.apply({"params": params}, x) - y) ** 2)


@functools.partial(jax.jit, static_argnames=("model", "name", "num_steps"))
def train_chunk(params, opt_state, learning_rate, data, *, model, name, num_steps):
    """`num_steps` full-batch steps under `jax.lax.scan` (the lr is traced); the
    train and validation MSE before each. The paper's StableGrad takes the std
    of dL/d(prediction) from the same backward pass."""
    tx = recipes.RECIPES[name].make(learning_rate)
    takes_reference = recipes.RECIPES[name].prediction_reference is not None
    value_and_grad = sgo.prediction_value_and_grad(
        lambda params, x, y: model.apply({"params": params}, x),
        lambda prediction, x, y: jnp.mean((prediction - y) ** 2),
    )

    def step(carry, _):
        params, opt_state = carry
        x, y = data["x_train"], data["y_train"]
        train_loss, grads, scale = value_and_grad(params, x, y)
        val_loss = mse(model, params, data["x_val"], data["y_val"])
        extra = {"reference_scale": scale} if takes_reference else {}
        updates, opt_state = tx.update(grads, opt_state, params, **extra)
        params = optax.apply_updates(params, updates)
        return (params, opt_state), (train_loss, val_loss)

    (params, opt_state), (train_curve, val_curve) = jax.lax.scan(
        step, (params, opt_state), length=num_steps
    )
    return params, opt_state, train_curve, val_curve


@functools.partial(jax.jit, static_argnames="model")
def evaluate(params, data, *, model):
    return tuple(
        mse(model, params, data[f"x_{s}"], data[f"y_{s}"]) for s in ("train", "val")
    )


def chunk_lengths(config: argparse.Namespace) -> list[int]:
    """The scan lengths that make up `config.steps` steps."""
    chunk = max(1, min(config.chunk, config.steps))
    full, rest = divmod(config.steps, chunk)
    return [chunk] * full + ([rest] if rest else [])


def compile_optimizer(model, params, data, name, config) -> float:
    """Compiles `train_chunk` for `name` (the whole grid) ahead of the runs, so
    that their wall times leave compilation out; returns the seconds."""
    start = time.perf_counter()
    opt_state = recipes.RECIPES[name].make(0.0).init(params)
    lr = jnp.asarray(0.0, jnp.float32)
    for n in set(chunk_lengths(config)):
        train_chunk.lower(
            params, opt_state, lr, data, model=model, name=name, num_steps=n
        ).compile()
    evaluate.lower(params, data, model=model).compile()
    return time.perf_counter() - start


def train_one(model, params, data, name, learning_rate, config) -> dict[str, Any]:
    """Trains one (optimizer, learning rate) pair from `params`; NaN-safe."""
    opt_state = recipes.RECIPES[name].make(learning_rate).init(params)
    lr = jnp.asarray(learning_rate, jnp.float32)
    parts = []  # per chunk: the (train, validation) MSE before each step
    start = time.perf_counter()
    desc = f"{name} lr={learning_rate:g}"
    with tqdm(
        total=config.steps, desc=desc, disable=config.no_progress, leave=False
    ) as bar:
        for n in chunk_lengths(config):
            params, opt_state, *part = train_chunk(
                params, opt_state, lr, data, model=model, name=name, num_steps=n
            )
            parts.append(np.asarray(part))
            bar.update(n)
    final_train, final_val = (float(v) for v in evaluate(params, data, model=model))
    wall = time.perf_counter() - start
    final = [[final_train], [final_val]]
    train_curve, val_curve = np.concatenate([*parts, final], axis=1)
    finite_val = val_curve[np.isfinite(val_curve)]
    finite_or_none = lambda value: value if math.isfinite(value) else None
    return {
        "optimizer": name,
        "learning_rate": learning_rate,
        "diverged": not (math.isfinite(final_train) and math.isfinite(final_val)),
        "final_train_mse": finite_or_none(final_train),
        "final_val_mse": finite_or_none(final_val),
        "best_val_mse": float(finite_val.min()) if finite_val.size else None,
        "wall_time_s": wall,
        # Entry i is the loss before step i; the last entry is after the last step.
        "train_curve": [finite_or_none(float(v)) for v in train_curve],
        "val_curve": [finite_or_none(float(v)) for v in val_curve],
    }


def results_table(chosen: dict[str, dict[str, Any]]) -> str:
    """A markdown table: one row per optimizer at its chosen learning rate."""
    fmt = lambda value: "diverged" if value is None else f"{value:.3e}"
    mses = ("final_train_mse", "final_val_mse", "best_val_mse")
    body = [
        [
            name,
            "none (all diverged)" if run["diverged"] else f"{run['learning_rate']:g}",
            *(fmt(run[k]) for k in mses),
            f"{run['wall_time_s']:.2f}",
        ]
        for name, run in chosen.items()
    ]
    header = ["optimizer", "chosen lr", "final train MSE", "final val MSE"]
    header += ["best val MSE", "wall time (s)"]
    return "\n".join(mdtables.table(header, body))


def plot_val_curves(chosen: dict[str, dict[str, Any]], path: pathlib.Path) -> None:
    """Validation MSE against step (log scale), one line per optimizer."""
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    for name, run in chosen.items():
        curve = np.array(run["val_curve"], float)  # None: NaN
        label = f"{name} (lr={run['learning_rate']:g})"
        label += ", diverged" if run["diverged"] else ""
        ax.plot(np.arange(curve.size), curve, label=label)
    title = "Deep tanh MLP, 2-D regression, each optimizer at its best lr"
    ax.set(yscale="log", xlabel="step", ylabel="validation MSE", title=title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def train_and_evaluate(config: argparse.Namespace, outdir: str | pathlib.Path):
    """Runs every optimizer over its grid; writes JSON and PNG; returns results."""
    meta = run_metadata()  # when the run starts: the code it runs
    outdir = pathlib.Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    data_key, init_key = jax.random.split(jax.random.key(config.seed))
    data = create_data(data_key, config.num_train, config.num_val)
    model = MLP(depth=config.depth, width=config.width, activation="tanh")
    params = model.init(init_key, data["x_train"][:1])["params"]

    # Per-layer gradient std at init, as `stablegrad` measures it.
    grads = jax.grad(mse, argnums=1)(model, params, data["x_train"], data["y_train"])
    grad_std = {k: float(v) for k, v in sgo.layer_statistics(grads).items()}
    spread = sgo.imbalance(grad_std)
    print(
        f"Per-layer gradient std at init: imbalance {spread.ratio:.3g} "
        f"(largest {spread.largest} {spread.largest_value:.3g}, "
        f"smallest {spread.smallest} {spread.smallest_value:.3g})"
    )

    grids = {"adaptive": config.adam_lrs, "sgd": config.sgd_lrs}
    runs, chosen, compile_s = {}, {}, {}
    for name in config.optimizers:
        compile_s[name] = compile_optimizer(model, params, data, name, config)
        runs[name] = [
            train_one(model, params, data, name, lr, config)
            for lr in grids[recipes.RECIPES[name].grid]
        ]
        # The lowest final validation MSE; the first (diverged) if all diverged.
        finite = [r for r in runs[name] if not r["diverged"]]
        chosen[name] = min(
            finite, key=itemgetter("final_val_mse"), default=runs[name][0]
        )

    table = results_table(chosen)
    print(
        f"\ndepth {config.depth}, width {config.width}, {config.steps} full-batch "
        f"steps, {config.num_train} train / {config.num_val} val points; wall time "
        "of the chosen run, compilation excluded"
    )
    print(table)

    results = {
        "meta": meta,
        "config": vars(config),
        "init_gradient_std": grad_std,
        "init_imbalance": spread._asdict(),
        "chosen": {  # None where every learning rate of the grid diverged
            name: None if run["diverged"] else run["learning_rate"]
            for name, run in chosen.items()
        },
        "compile_time_s": compile_s,
        "runs": runs,
    }
    (outdir / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (outdir / "table.md").write_text(
        f"Command: `{meta['command']}`  \nDevice: {meta['device']}  \n"
        f"Date: {meta['date']}; git {meta['git_commit']}; jax {meta['jax']}, "
        f"optax {meta['optax']}\n\n" + table + "\n"
    )
    plot_val_curves(chosen, outdir / "val_mse.png")
    print(f"\nWrote results.json, table.md and val_mse.png to {outdir}")
    return results


def main(argv: Sequence[str] | None = None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--steps", type=int, default=600)
    add("--depth", type=int, default=16, help="hidden layers")
    add("--width", type=int, default=32)
    add("--num-train", type=int, default=1024)
    add("--num-val", type=int, default=1024)
    add("--seed", type=int, default=0)
    add("--chunk", type=int, default=100, help="steps per scan")
    add("--adam-lrs", type=float, nargs="+", default=ADAM_LRS)
    add("--sgd-lrs", type=float, nargs="+", default=SGD_LRS)
    add("--optimizers", nargs="+", choices=OPTIMIZERS, default=list(OPTIMIZERS))
    add("--outdir", default="mlp_regression_out")
    add("--no-progress", action="store_true")
    add("--quick", action="store_true", help="smoke test: 20 steps, depth 4")
    config = parser.parse_args(argv)
    if config.quick:
        config.steps, config.depth = 20, 4
    print(f"JAX devices: {jax.devices()}")
    return train_and_evaluate(config, config.outdir)


if __name__ == "__main__":
    main()
