"""SGD vs SGDP and AdamW vs AdamP on a normalised MLP (synthetic classification).

Every hidden Dense layer is followed by LayerNorm, so its kernel is
scale-invariant: the loss does not change when the kernel is scaled. Momentum
then mostly grows such weights' norms, which shrinks their effective step
(Heo et al., 2021); AdamP and SGDP remove the radial part of the update of the
weights their cosine test finds scale-invariant. Each optimizer picks its
learning rate from its own grid by final validation accuracy (mean over
seeds); all share the weight decay, the data, the batches and the initial
parameters of each seed.

  python examples/adamp/main.py                   # ~1 min on 2 CPU cores
  python examples/adamp/main.py --steps 4 --seeds 1 --outdir /tmp/adamp  # a smoke run

Writes results.json, table.md and curves.png to --outdir (default adamp_out/).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

import stablegrad_optax as sgo

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # common.py
from common import positive, run_metadata  # noqa: E402

WEIGHT_DECAY = 1e-4
OPTIMIZERS = {
    # name -> (learning_rate -> transformation, lr grid)
    "sgd-momentum": (
        lambda learning_rate: optax.chain(
            optax.add_decayed_weights(WEIGHT_DECAY),
            optax.sgd(learning_rate, momentum=0.9, nesterov=True),
        ),
        (0.01, 0.03, 0.1, 0.3, 1.0),
    ),
    "sgdp": (
        lambda learning_rate: sgo.sgdp(
            learning_rate, momentum=0.9, nesterov=True, weight_decay=WEIGHT_DECAY
        ),
        (0.01, 0.03, 0.1, 0.3, 1.0),
    ),
    "adamw": (
        lambda learning_rate: optax.adamw(learning_rate, weight_decay=WEIGHT_DECAY),
        (1e-4, 3e-4, 1e-3, 3e-3),
    ),
    "adamp": (
        lambda learning_rate: sgo.adamp(learning_rate, weight_decay=WEIGHT_DECAY),
        (1e-4, 3e-4, 1e-3, 3e-3),
    ),
}


class Net(nn.Module):
    """Dense (no bias) -> LayerNorm -> ReLU blocks, then a linear head."""

    width: int
    depth: int
    classes: int

    @nn.compact
    def __call__(self, x):
        for i in range(self.depth):
            x = nn.Dense(self.width, use_bias=False, name=f"dense_{i}")(x)
            x = nn.relu(nn.LayerNorm(name=f"norm_{i}")(x))
        return nn.Dense(self.classes, name="head")(x)


def make_data(key, n_train=16384, n_val=2048, dim=32, classes=10):
    """Labels from a random two-layer tanh teacher on Gaussian inputs."""
    k_x, k_w1, k_w2 = jax.random.split(key, 3)
    x = jax.random.normal(k_x, (n_train + n_val, dim))
    w1 = jax.random.normal(k_w1, (dim, 64)) / jnp.sqrt(dim)
    w2 = jax.random.normal(k_w2, (64, classes)) / 8
    y = jnp.argmax(jnp.tanh(x @ w1 * 2) @ w2, axis=-1)
    return (x[:n_train], y[:n_train]), (x[n_train:], y[n_train:])


def make_chunk(model, tx, data, batch, invariant):
    """A jitted function running a chunk of steps; compiled once per optimizer.

    The learning rate lives in the state (`optax.inject_hyperparams`), so one
    compilation serves every learning rate and seed.
    """
    (x, y), (x_val, y_val) = data

    def loss_fn(p, xb, yb):
        logits = model.apply(p, xb)
        return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

    def step(carry, k):
        p, state = carry
        idx = jax.random.randint(k, (batch,), 0, x.shape[0])
        loss, grads = jax.value_and_grad(loss_fn)(p, x[idx], y[idx])
        updates, state = tx.update(grads, state, p)
        return (optax.apply_updates(p, updates), state), loss

    @jax.jit
    def chunk(p, state, keys):
        (p, state), losses = jax.lax.scan(step, (p, state), keys)
        accuracy = jnp.mean(jnp.argmax(model.apply(p, x_val), -1) == y_val)
        norm = sum(jnp.linalg.norm(p["params"][k]["kernel"]) for k in invariant)
        return p, state, jnp.mean(losses), accuracy, norm

    return chunk


def projected_fraction(state, invariant) -> float | None:
    """Share of the scale-invariant kernels projected at the last step."""
    found = [
        s
        for s in jax.tree.leaves(state, is_leaf=_is_projection)
        if isinstance(s, sgo.ProjectionState)
    ]
    if not found:
        return None
    flags = found[0].projected["params"]
    return float(np.mean([bool(flags[k]["kernel"]) for k in invariant]))


def train_run(chunk, state, params, key, steps, log_every, invariant):
    """One run; a record (step, loss, val accuracy, norms, projected) per log."""
    records = []
    for start in range(0, steps, log_every):
        length = min(log_every, steps - start)
        keys = jax.random.split(jax.random.fold_in(key, start), length)
        params, state, loss, accuracy, norm = chunk(params, state, keys)
        records.append(
            {
                "step": start + length,
                "loss": float(loss),
                "val_accuracy": float(accuracy),
                "invariant_weight_norm": float(norm),
                "projected_fraction": projected_fraction(state, invariant),
            }
        )
    return records


def _is_projection(node) -> bool:
    return isinstance(node, sgo.ProjectionState)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=positive(int), default=600)
    parser.add_argument("--seeds", type=positive(int), default=3)
    parser.add_argument("--depth", type=positive(int), default=4)
    parser.add_argument("--width", type=positive(int), default=128)
    parser.add_argument("--batch", type=positive(int), default=128)
    parser.add_argument("--log-every", type=positive(int), default=50)
    parser.add_argument(
        "--outdir", type=pathlib.Path, default=pathlib.Path("adamp_out")
    )
    return parser.parse_args(argv)


def final_accuracy(runs: list[list[dict]]) -> float:
    """Final validation accuracy, mean over seeds."""
    return float(np.mean([run[-1]["val_accuracy"] for run in runs]))


def mean_curve(runs: list[list[dict]], name: str) -> list[float]:
    return [float(np.mean([run[i][name] for run in runs])) for i in range(len(runs[0]))]


def write_outputs(results: dict, outdir: pathlib.Path) -> None:
    """results.json, table.md (chosen lr per optimizer) and curves.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    outdir.mkdir(parents=True, exist_ok=True)
    (outdir / "results.json").write_text(json.dumps(results, indent=1))
    meta, config = results["meta"], results["config"]
    lines = [
        f"Command: `{meta['command']}`  ",
        f"Device: {meta['device']}  ",
        f"Date: {meta['date']}; git {meta['git_commit']}",
        "",
        f"MLP of {config['depth']} Dense(no bias)-LayerNorm-ReLU blocks of "
        f"{config['width']}, {config['steps']} steps of batch {config['batch']}, "
        f"weight decay {WEIGHT_DECAY}, {config['seeds']} seeds; each optimizer's "
        "lr is the best of its grid by final validation accuracy (mean over seeds).",
        "",
        "| optimizer | lr (grid) | final val accuracy (mean ± std) | final loss "
        "| scale-invariant weight norm, final "
        "| projected (share of logged steps x kernels) |",
        "|---|---|---|---|---|---|",
    ]
    for name, chosen in results["chosen"].items():
        runs = results["runs"][name][str(chosen)]
        finals = [run[-1]["val_accuracy"] for run in runs]
        projected = [r["projected_fraction"] for run in runs for r in run]
        share = "–" if projected[0] is None else f"{np.mean(projected):.2f}"
        grid = ", ".join(str(lr) for lr in OPTIMIZERS[name][1])
        lines.append(
            f"| {name} | {chosen} ({grid}) | {np.mean(finals):.4f} ± "
            f"{np.std(finals):.4f} | {np.mean([r[-1]['loss'] for r in runs]):.4f} | "
            f"{np.mean([r[-1]['invariant_weight_norm'] for r in runs]):.1f} | {share} |"
        )
    (outdir / "table.md").write_text("\n".join(lines) + "\n")

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for name, chosen in results["chosen"].items():
        runs = results["runs"][name][str(chosen)]
        steps = [r["step"] for r in runs[0]]
        for ax, key in zip(
            axes, ("loss", "val_accuracy", "invariant_weight_norm"), strict=True
        ):
            ax.plot(steps, mean_curve(runs, key), label=f"{name} (lr {chosen})")
    for ax, title in zip(
        axes,
        ("training loss", "validation accuracy", "norm of the scale-invariant kernels"),
        strict=True,
    ):
        ax.set(xlabel="step", title=title)
    axes[0].set_yscale("log")
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(outdir / "curves.png", dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    start, meta = time.perf_counter(), run_metadata()  # the code this run runs
    data = make_data(jax.random.key(1234))
    model = Net(width=args.width, depth=args.depth, classes=10)
    inits = [
        model.init(jax.random.key(seed), data[0][0][:1]) for seed in range(args.seeds)
    ]
    invariant = [k for k in inits[0]["params"] if k.startswith("dense_")]
    runs: dict[str, dict[str, list]] = {}
    chosen = {}
    for name, (make, grid) in OPTIMIZERS.items():
        tx = optax.inject_hyperparams(make)(learning_rate=grid[0])
        chunk = make_chunk(model, tx, data, args.batch, invariant)
        runs[name] = {}
        for lr in grid:
            runs[name][str(lr)] = []
            for seed in range(args.seeds):
                state = tx.init(inits[seed])
                state.hyperparams["learning_rate"] = jnp.asarray(lr, jnp.float32)
                runs[name][str(lr)].append(
                    train_run(
                        chunk,
                        state,
                        inits[seed],
                        jax.random.key(100 + seed),
                        args.steps,
                        args.log_every,
                        invariant,
                    )
                )
        scores = {lr: final_accuracy(runs[name][str(lr)]) for lr in grid}
        chosen[name] = max(grid, key=scores.get)
        print(f"{name}: lr {chosen[name]}, val accuracy {scores[chosen[name]]:.4f}")
    results = {
        "meta": meta,
        "config": {
            k: str(v) if isinstance(v, pathlib.Path) else v
            for k, v in vars(args).items()
        },
        "chosen": chosen,
        "runs": runs,
        "seconds": time.perf_counter() - start,
    }
    write_outputs(results, args.outdir)
    print((args.outdir / "table.md").read_text())
    return results


if __name__ == "__main__":
    main()
