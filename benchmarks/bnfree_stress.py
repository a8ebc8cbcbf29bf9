"""BatchNorm-free stress test: does training collapse without BN, and what saves it?

Trains every model, optimizer, learning rate (``--lrs``: the stability frontier)
and variant (`recipes.VARIANTS`) on each seed, which fixes the initial kernels
and the data stream for every variant; the method: ``docs/bnfree.md``. One CSV
row per run goes to ``--results`` (`bnfree_stress_results`), its per-step logs
beside it. Runs already there are skipped; with ``--per-machine`` only those
this machine (the ``device`` column) made.

  python benchmarks/bnfree_stress.py --models resnet18 --width 16
  python benchmarks/bnfree_stress_report.py   # table, plots, docs page
"""

from __future__ import annotations

import argparse
import datetime
import functools
import itertools
import math
import pathlib
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import stablegrad_optax as sgo
from stablegrad_optax import datasets, models

import bnfree_stress_results as results
import csvrows
import recipes

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "examples"))
from common import code_version, device_name, name_list, positive  # noqa: E402

MODELS: dict[str, Callable[..., Any]] = {
    "resnet18": models.ResNet18,
    "resnet34": models.ResNet34,
    "resnet50": models.ResNet50,
    "effnetv2s": models.EfficientNetV2S,
    "effnet-tiny": models.EfficientNetV2Tiny,
}
OPTIMIZERS: dict[str, tuple[float, Callable[[float], optax.GradientTransformation]]] = {
    "sgd": (
        0.1,
        lambda lr: optax.chain(
            optax.add_decayed_weights(5e-4), optax.sgd(lr, momentum=0.9)
        ),
    ),
    "adamw": (1e-3, lambda lr: optax.adamw(lr, weight_decay=1e-4)),
}
ADAM_EPS = 1e-8  # optax.adamw's default: a layer below it is one Adam cannot see
DEFAULT_VARIANTS = "bn,none,none+stablegrad,skipinit,none+agc,skipinit+stablegrad"
DATASETS = {"digits32": datasets.load_digits32, "synthetic": datasets.synthetic_images}
LOGS = ("loss", "min_grad_std", "below_eps")  # per step, in the history file


def make_optimizer(optimizer: str, variant: str, lr: float | None = None):
    """The optimizer at `lr` (default: its usual one), after the variant's own."""
    default_lr, make = OPTIMIZERS[optimizer]
    tx = make(default_lr if lr is None else lr)
    before = recipes.VARIANTS[variant].before
    return tx if before is None else optax.chain(before(), tx)


def run_cell(args, data, model_name, optimizer, variant, seeds, lr=None):
    """Trains the seeds of one cell: (summary per seed, {`LOGS` name: [seed, step]}):
    the minibatch loss, the smallest per-layer gradient std (before any rescale)
    and how many layers' is below `ADAM_EPS`; NaN after a divergence."""
    spec = recipes.VARIANTS[variant]
    kwargs = {"num_classes": data.num_classes, "norm": spec.norm}
    if model_name.startswith("resnet"):
        kwargs |= {"width": args.width, "stem": "cifar"}
    model = MODELS[model_name](**kwargs)
    tx = make_optimizer(optimizer, variant, lr)
    train_x, train_y = jnp.asarray(data.train_images), jnp.asarray(data.train_labels)
    augment = functools.partial(datasets.augment, flip=args.dataset != "digits32")

    def init(seed):
        # rbg: the default (threefry) key takes ~4x longer to compile a conv
        # net's init on CPU, for no benefit here.
        key = jax.random.key(seed, impl="rbg")
        variables = model.init(key, train_x[:1], train=False)
        params = variables["params"]
        return params, variables.get("batch_stats", {}), tx.init(params)

    def forward(params, stats, x, train):
        if spec.norm != "batch":
            return model.apply({"params": params}, x), stats
        variables = {"params": params, "batch_stats": stats}
        if not train:
            return model.apply(variables, x, train=False), stats
        logits, updates = model.apply(variables, x, mutable=["batch_stats"])
        return logits, updates["batch_stats"]

    def step(state, key):
        params, stats, opt_state = state
        pick, crop = jax.random.split(key)
        index = jax.random.choice(pick, len(train_x), (args.batch_size,), False)
        x, y = augment(crop, train_x[index]), train_y[index]

        def cross_entropy(logits):
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        def loss_fn(p):
            logits, new_stats = forward(p, stats, x, True)
            return cross_entropy(logits), new_stats

        if spec.prediction:  # the logits' cotangent sets the reference
            (loss, stats), grads, scale = sgo.prediction_value_and_grad(
                lambda p: forward(p, stats, x, True),
                cross_entropy,
                predict_has_aux=True,
            )(params)
            extra = {"reference_scale": scale}
        else:
            (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
            extra = {}
        updates, opt_state = tx.update(grads, opt_state, params, **extra)
        layer_std = jnp.stack(list(sgo.layer_statistics(grads).values()))
        logs = (loss, jnp.min(layer_std), jnp.sum(layer_std < ADAM_EPS))
        return (optax.apply_updates(params, updates), stats, opt_state), logs

    def evaluate(state, images, labels):
        params, stats, _ = state
        logits, _ = forward(params, stats, images, False)
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
        return loss, jnp.argmax(logits, -1) == labels

    # Seeds in sequence through the same compiled functions, steps in a Python
    # loop: on XLA's CPU backend a convolution inside `lax.scan` runs ~18x slower
    # than jitted alone, and vmapped seeds (grouped convolutions) ~2x slower.
    init, step, evaluate = jax.jit(init), jax.jit(step), jax.jit(evaluate)
    test = (jnp.asarray(data.test_images), jnp.asarray(data.test_labels))

    def batched(state, images, labels, limit):
        out = [
            evaluate(state, images[i : i + 500], labels[i : i + 500])
            for i in range(0, min(limit, len(images)), 500)
        ]
        return [np.concatenate([np.asarray(o[k]) for o in out]) for k in (0, 1)]

    rows, curves = [], []
    for seed in seeds:
        start = time.perf_counter()
        state = init(seed)
        # The data stream of a seed: its own key, apart from its init key.
        keys = jax.random.split(jax.random.key(10_000 + seed), args.steps)
        logs = np.full((len(LOGS), args.steps), np.nan)
        for begin in range(0, args.steps, args.chunk):
            end = min(begin + args.chunk, args.steps)
            part = []
            for key in keys[begin:end]:
                state, log = step(state, key)
                part.append(log)
            logs[:, begin:end] = np.asarray(jax.device_get(part), float).T  # one sync
            if not math.isfinite(logs[0, end - 1]):  # diverged: NaN from here on
                break
        losses = logs[0]
        train_loss, _ = batched(state, train_x, train_y, args.eval_examples)
        _, correct = batched(state, *test, len(test[1]))
        nonfinite = np.flatnonzero(~np.isfinite(losses))
        rows.append(
            {
                "seed": seed,
                "first_nonfinite_step": int(nonfinite[0]) + 1 if len(nonfinite) else 0,
                "initial_loss": float(losses[0]),
                "final_minibatch_loss": float(np.mean(losses[-args.chunk :])),
                "final_train_loss": float(np.mean(train_loss)),
                "test_accuracy": float(np.mean(correct)),
                "wall_s": round(time.perf_counter() - start, 2),
            }
        )
        curves.append(logs)
    return rows, dict(zip(LOGS, np.stack(curves, axis=1), strict=True))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    csv = lambda kind: lambda text: [kind(v) for v in text.split(",") if v]
    add("--models", type=name_list(tuple(MODELS), "model"), default="resnet18")
    width_help = "ResNet first-stage filters (64: full)"
    add("--width", type=positive(int), default=16, help=width_help)
    add("--dataset", default="digits32", choices=(*DATASETS, "cifar10", "cifar100"))
    add("--data-dir", default=None, help="folder of the CIFAR archive")
    optimizers = name_list(tuple(OPTIMIZERS), "optimizer")
    add("--optimizers", type=optimizers, default=",".join(OPTIMIZERS))
    add("--lrs", type=csv(float), help="default: each optimizer's usual one")
    variants = name_list(tuple(recipes.VARIANTS), "variant")
    add("--variants", type=variants, default=DEFAULT_VARIANTS)
    add("--seeds", type=csv(int), default=[0, 1, 2])
    add("--steps", type=positive(int), default=300)
    add("--batch-size", type=positive(int), default=32)
    add("--chunk", type=positive(int), default=25, help="steps between host syncs")
    eval_help = "train examples for the loss"
    add("--eval-examples", type=positive(int), default=2048, help=eval_help)
    add("--results", type=pathlib.Path, default=results.RESULTS)
    add("--max-minutes", type=float, default=None)
    mine = "a run is done only if this machine made it (the same device column)"
    add("--per-machine", action="store_true", help=mine)
    args = parser.parse_args(argv)
    if args.dataset not in DATASETS and args.data_dir is None:
        parser.error(f"--dataset {args.dataset} needs --data-dir (nothing is fetched)")
    if not args.seeds:
        parser.error("--seeds: give at least one seed")
    if args.lrs is not None and not (args.lrs and all(lr > 0 for lr in args.lrs)):
        parser.error("--lrs: give learning rates > 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    meta = {"device": device_name(), "git_commit": code_version()}
    csvrows.drop_partial_line(args.results)
    done = {
        results.run_key(row)
        for row in results.read_rows(args.results)
        if not args.per_machine or row["device"] == meta["device"]
    }
    if args.dataset in DATASETS:
        data = DATASETS[args.dataset]()
    else:
        data = datasets.load_cifar(args.data_dir, num_classes=int(args.dataset[5:]))
    print(f"{meta}; {args.dataset}: {len(data.train_labels)} train images")
    began = time.perf_counter()
    plan = [
        (model, optimizer, lr, variant)
        for model, optimizer in itertools.product(args.models, args.optimizers)
        for lr in (args.lrs or [OPTIMIZERS[optimizer][0]])
        for variant in args.variants
    ]
    for model, optimizer, lr, variant in plan:
        width = args.width if model.startswith("resnet") else 0
        values = (model, width, args.dataset, optimizer, lr, variant)
        values += (args.steps, args.batch_size)
        cell = dict(zip(results.KEY[:-1], values, strict=True))
        seeds = [
            s for s in args.seeds if results.run_key(cell | {"seed": s}) not in done
        ]
        if not seeds:
            continue
        minutes = (time.perf_counter() - began) / 60
        if args.max_minutes is not None and minutes > args.max_minutes:
            print("--max-minutes reached; stopping before a new cell")
            break
        summaries, logs = run_cell(args, data, model, optimizer, variant, seeds, lr)
        now = datetime.datetime.now(datetime.UTC)
        meta |= {"date": now.isoformat("T", "seconds"), "jax": jax.__version__}
        rows = [cell | summary | meta for summary in summaries]
        results.append_history(
            args.results,
            [
                {"key": results.run_key(row)}
                | {k: v[i].tolist() for k, v in logs.items()}
                for i, row in enumerate(rows)
            ],
        )
        results.append_rows(args.results, rows)
        outcome = " ".join(
            f"s{r['seed']}:NaN@{r['first_nonfinite_step']}"
            if r["first_nonfinite_step"]
            else f"s{r['seed']}:{r['final_train_loss']:.3g}/{r['test_accuracy']:.3f}"
            for r in rows
        )
        minutes = (time.perf_counter() - began) / 60
        print(
            f"[{minutes:6.1f} min] {model} {optimizer} {lr:g} {variant}: "
            f"{outcome} (seed:loss/accuracy)",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
