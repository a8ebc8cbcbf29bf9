"""Deep MLP regression: StableGrad against Adam and SGD with momentum.

A deep, narrow tanh MLP (Flax linen, hidden layers ``hidden_0``.. and an output
layer ``head``) is fitted to a smooth 2-D target,
``y = sin(3 x1) cos(2 x2) + 0.5 x1 x2`` with ``x`` uniform in ``[-1, 1]^2``,
full batch, with five optimizers:

* ``adam``: ``optax.adam(lr)``
* ``stablegrad(prediction)+adam``: the paper's StableGrad,
  ``optax.chain(sgo.stablegrad("prediction"), optax.adam(lr))``, every layer's
  gradient rescaled to the std of dL/d(prediction), which
  ``sgo.prediction_value_and_grad`` returns from the step's backward pass;
* ``stablegrad+adam``: ``optax.chain(sgo.stablegrad(...), optax.adam(lr))``
  (the output layer's weight-gradient std as the reference)
* ``sgd-momentum``: ``optax.sgd(lr, momentum=0.9)``
* ``stablegrad+sgd-momentum``: the same chain before SGD with momentum.

Every optimizer starts from the same parameters on the same data and picks its
own learning rate from its own small grid by final validation MSE; the table
says which one it chose. A run whose loss turns NaN is reported as diverged.

What to expect: Adam is nearly invariant to a per-layer gradient scale that is
constant in time, so StableGrad+Adam differs from Adam only through the time
variation of the factors and where Adam's ``eps`` dominates (layers whose
gradients are vanishingly small). Under SGD the rescale sets each layer's
effective learning rate: every layer's gradient gets the output layer's std.

Outputs (in ``--outdir``, default ``mlp_regression_out/``): ``results.json``
(raw numbers: every run of every grid, the curves and the per-layer gradient
std at init), ``table.md`` and ``val_mse.png`` (validation MSE against step,
one line per optimizer at its chosen learning rate). The markdown table is
printed.

Usage::

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
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from tqdm.auto import tqdm

import stablegrad_optax as sgo
from stablegrad_optax.models import MLP

import recipes

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "examples"))
from common import OPTIMIZERS, run_metadata  # noqa: E402

ADAM_LRS = (3e-4, 1e-3, 3e-3, 1e-2)
SGD_LRS = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1)


def create_model(config: argparse.Namespace) -> MLP:
    """The library's deep MLP: tanh, `hidden_0`.. then `head`, LeCun init."""
    return MLP(depth=config.depth, width=config.width, activation="tanh")


def target_fn(x: jax.Array) -> jax.Array:
    """The regression target, shape (n, 2) -> (n, 1)."""
    x1, x2 = x[:, :1], x[:, 1:]
    return jnp.sin(3 * x1) * jnp.cos(2 * x2) + 0.5 * x1 * x2


def create_data(key: jax.Array, num_train: int, num_val: int) -> dict[str, jax.Array]:
    """Train and validation sets, x uniform in [-1, 1]^2."""
    k_train, k_val = jax.random.split(key)
    x_train = jax.random.uniform(k_train, (num_train, 2), minval=-1.0, maxval=1.0)
    x_val = jax.random.uniform(k_val, (num_val, 2), minval=-1.0, maxval=1.0)
    return {
        "x_train": x_train,
        "y_train": target_fn(x_train),
        "x_val": x_val,
        "y_val": target_fn(x_val),
    }


def mse(model: nn.Module, params: Any, x: jax.Array, y: jax.Array) -> jax.Array:
    return jnp.mean((model.apply({"params": params}, x) - y) ** 2)


def create_optimizer(
    name: str, learning_rate: jax.typing.ArrayLike
) -> optax.GradientTransformation:
    """The recipe called `name` (`recipes.RECIPES`); the lr may be traced."""
    return recipes.RECIPES[name].make(learning_rate)


def learning_rates(name: str, config: argparse.Namespace) -> tuple[float, ...]:
    grids = {"adaptive": config.adam_lrs, "sgd": config.sgd_lrs}
    return tuple(grids[recipes.RECIPES[name].grid])


def train_step(model, tx, params, opt_state, data, name):
    """One full-batch step; returns the train and validation MSE before it.

    The loss and gradients come with the std of dL/d(prediction) from the same
    backward pass; the paper's StableGrad takes it as ``reference_scale``.
    """

    def predict(params, x, y):
        return model.apply({"params": params}, x)

    def loss(prediction, x, y):
        return jnp.mean((prediction - y) ** 2)

    step = sgo.prediction_value_and_grad(predict, loss)
    train_loss, grads, scale = step(params, data["x_train"], data["y_train"])
    val_loss = mse(model, params, data["x_val"], data["y_val"])
    takes_reference = recipes.RECIPES[name].prediction_reference is not None
    extra = {"reference_scale": scale} if takes_reference else {}
    updates, opt_state = tx.update(grads, opt_state, params, **extra)
    params = optax.apply_updates(params, updates)
    return params, opt_state, train_loss, val_loss


@functools.partial(jax.jit, static_argnames=("model", "name", "num_steps"))
def train_chunk(params, opt_state, learning_rate, data, *, model, name, num_steps):
    """`num_steps` steps under `jax.lax.scan`; one compilation per optimizer."""
    tx = create_optimizer(name, learning_rate)

    def body(carry, _):
        params, opt_state, train_loss, val_loss = train_step(
            model, tx, *carry, data, name
        )
        return (params, opt_state), (train_loss, val_loss)

    (params, opt_state), (train_curve, val_curve) = jax.lax.scan(
        body, (params, opt_state), length=num_steps
    )
    return params, opt_state, train_curve, val_curve


@functools.partial(jax.jit, static_argnames="model")
def evaluate(params, data, *, model):
    return (
        mse(model, params, data["x_train"], data["y_train"]),
        mse(model, params, data["x_val"], data["y_val"]),
    )


def init_gradient_std(model, params, data) -> dict[str, float]:
    """Per-layer gradient std at init, as `stablegrad` measures it."""
    grads = jax.grad(mse, argnums=1)(model, params, data["x_train"], data["y_train"])
    return {k: float(v) for k, v in sgo.layer_statistics(grads).items()}


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def chunk_lengths(config: argparse.Namespace) -> list[int]:
    """The scan lengths that make up `config.steps` steps."""
    chunk = max(1, min(config.chunk, config.steps))
    full, rest = divmod(config.steps, chunk)
    return [chunk] * full + ([rest] if rest else [])


def compile_optimizer(model, params, data, name, config) -> float:
    """Compiles `train_chunk` for `name` ahead of the runs; returns the seconds.

    The learning rate is traced, so this serves the whole grid and the runs'
    wall times leave compilation out.
    """
    start = time.perf_counter()
    opt_state = create_optimizer(name, 0.0).init(params)
    lr = jnp.asarray(0.0, jnp.float32)
    for n in set(chunk_lengths(config)):
        train_chunk.lower(
            params, opt_state, lr, data, model=model, name=name, num_steps=n
        ).compile()
    evaluate.lower(params, data, model=model).compile()
    return time.perf_counter() - start


def train_one(model, params, data, name, learning_rate, config) -> dict[str, Any]:
    """Trains one (optimizer, learning rate) pair from `params`; NaN-safe."""
    opt_state = create_optimizer(name, learning_rate).init(params)
    lr = jnp.asarray(learning_rate, jnp.float32)
    train_curve, val_curve = [], []
    start = time.perf_counter()
    with tqdm(
        total=config.steps,
        desc=f"{name} lr={learning_rate:g}",
        disable=config.no_progress,
        leave=False,
    ) as bar:
        for n in chunk_lengths(config):
            params, opt_state, train_part, val_part = train_chunk(
                params, opt_state, lr, data, model=model, name=name, num_steps=n
            )
            train_curve.append(np.asarray(train_part))
            val_curve.append(np.asarray(val_part))
            bar.update(n)
    final_train, final_val = (float(v) for v in evaluate(params, data, model=model))
    wall = time.perf_counter() - start
    train_curve = np.concatenate([*train_curve, [final_train]])
    val_curve = np.concatenate([*val_curve, [final_val]])
    diverged = not (math.isfinite(final_train) and math.isfinite(final_val))
    finite_val = val_curve[np.isfinite(val_curve)]
    return {
        "optimizer": name,
        "learning_rate": learning_rate,
        "diverged": diverged,
        "final_train_mse": _finite_or_none(final_train),
        "final_val_mse": _finite_or_none(final_val),
        "best_val_mse": float(finite_val.min()) if finite_val.size else None,
        "wall_time_s": wall,
        # Entry i is the loss before step i; the last entry is after the last step.
        "train_curve": [_finite_or_none(float(v)) for v in train_curve],
        "val_curve": [_finite_or_none(float(v)) for v in val_curve],
    }


def choose(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The run with the lowest final validation MSE; the first if all diverged.

    An all-diverged optimizer still returns a run, which is reported as diverged.
    """
    finite = [r for r in runs if not r["diverged"]]
    if not finite:
        return runs[0]
    return min(finite, key=lambda r: r["final_val_mse"])


def _fmt(value: float | None) -> str:
    return "diverged" if value is None else f"{value:.3e}"


def results_table(chosen: dict[str, dict[str, Any]]) -> str:
    """A markdown table: one row per optimizer at its chosen learning rate."""
    lines = [
        "| optimizer | chosen lr | final train MSE | final val MSE | best val MSE "
        "| wall time (s) |",
        "|---|---|---|---|---|---|",
    ]
    for name, run in chosen.items():
        lr = "none (all diverged)" if run["diverged"] else f"{run['learning_rate']:g}"
        lines.append(
            f"| {name} | {lr} | {_fmt(run['final_train_mse'])} "
            f"| {_fmt(run['final_val_mse'])} | {_fmt(run['best_val_mse'])} "
            f"| {run['wall_time_s']:.2f} |"
        )
    return "\n".join(lines)


def plot_val_curves(chosen: dict[str, dict[str, Any]], path: pathlib.Path) -> None:
    """Validation MSE against step (log scale), one line per optimizer."""
    fig = Figure(figsize=(7, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for name, run in chosen.items():
        curve = np.array(
            [np.nan if v is None else v for v in run["val_curve"]], np.float64
        )
        label = f"{name} (lr={run['learning_rate']:g})"
        if run["diverged"]:
            label += ", diverged"
        ax.plot(np.arange(curve.size), curve, label=label)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("validation MSE")
    ax.set_title("Deep tanh MLP, 2-D regression, each optimizer at its best lr")
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
    model = create_model(config)
    params = model.init(init_key, data["x_train"][:1])["params"]

    grad_std = init_gradient_std(model, params, data)
    spread = sgo.imbalance(grad_std)
    print(
        f"Per-layer gradient std at init: imbalance {spread.ratio:.3g} "
        f"(largest {spread.largest} {spread.largest_value:.3g}, "
        f"smallest {spread.smallest} {spread.smallest_value:.3g})"
    )

    runs, chosen, compile_s = {}, {}, {}
    for name in config.optimizers:
        compile_s[name] = compile_optimizer(model, params, data, name, config)
        runs[name] = [
            train_one(model, params, data, name, lr, config)
            for lr in learning_rates(name, config)
        ]
        chosen[name] = choose(runs[name])

    table = results_table(chosen)
    print()
    print(
        f"depth {config.depth}, width {config.width}, {config.steps} full-batch "
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
    meta = results["meta"]
    (outdir / "table.md").write_text(
        f"Command: `{meta['command']}`  \nDevice: {meta['device']}  \n"
        f"Date: {meta['date']}; git {meta['git_commit']}; jax {meta['jax']}, "
        f"optax {meta['optax']}\n\n" + table + "\n"
    )
    plot_val_curves(chosen, outdir / "val_mse.png")
    print(f"\nWrote results.json, table.md and val_mse.png to {outdir}")
    return results


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--depth", type=int, default=16, help="hidden layers")
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--num-train", type=int, default=1024)
    parser.add_argument("--num-val", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chunk", type=int, default=100, help="steps per scan")
    parser.add_argument("--adam-lrs", type=float, nargs="+", default=ADAM_LRS)
    parser.add_argument("--sgd-lrs", type=float, nargs="+", default=SGD_LRS)
    parser.add_argument(
        "--optimizers", nargs="+", choices=OPTIMIZERS, default=list(OPTIMIZERS)
    )
    parser.add_argument("--outdir", default="mlp_regression_out")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument(
        "--quick", action="store_true", help="smoke test: 20 steps, depth 4"
    )
    config = parser.parse_args(argv)
    if config.quick:
        config.steps, config.depth = 20, 4
    return config


def main(argv: Sequence[str] | None = None):
    config = parse_args(argv)
    print(f"JAX devices: {jax.devices()}")
    return train_and_evaluate(config, config.outdir)


if __name__ == "__main__":
    main()
