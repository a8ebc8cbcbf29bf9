"""Training a BatchNorm-free ResNet, one variant at a time.

Functions in reading order: the model, the optimizer (the one place a
StableGrad chain is built), the loss, the batch, one train step (which passes
the std of dL/dlogits to StableGrad's paper reference) and one eval step, the
train state, then the loop over variants.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

import stablegrad_optax as sgo
from stablegrad_optax import models

import input_pipeline
import report
from common import run_metadata

MODELS = {
    "resnet18": models.ResNet18,
    "resnet34": models.ResNet34,
    "resnet50": models.ResNet50,
    "effnet-tiny": models.EfficientNetV2Tiny,
}


class Variant(NamedTuple):
    """What a variant changes: the model's `norm`, and what runs before SGD."""

    norm: str  # "batch", "none" or "skipinit" (`stablegrad_optax.models.NORMS`)
    # StableGrad's reference from the config (None: no StableGrad).
    reference: Callable[[Any], str] | None = None
    agc: bool = False  # adaptive gradient clipping before SGD


# Every variant the example trains, by name (the default run's are in
# `configs/default.py`).
VARIANTS = {
    "bn": Variant("batch"),
    "none": Variant("none"),
    "none+stablegrad": Variant("none", reference=lambda config: config.reference),
    "none+stablegrad(prediction)": Variant("none", reference=lambda _: "prediction"),
    "none+agc": Variant("none", agc=True),
    "skipinit": Variant("skipinit"),
    "skipinit+stablegrad(prediction)": Variant(
        "skipinit", reference=lambda _: "prediction"
    ),
}


def create_model(config, variant: str, num_classes: int):
    kwargs = {"num_classes": num_classes, "norm": VARIANTS[variant].norm}
    if config.model in ("resnet18", "resnet34", "resnet50"):
        kwargs |= {"width": config.width, "stem": "cifar"}
    return MODELS[config.model](**kwargs)


def stablegrad_reference(config, variant: str) -> str | None:
    """StableGrad's reference in a variant, None without StableGrad."""
    reference = VARIANTS[variant].reference
    return None if reference is None else reference(config)


def create_optimizer(config, variant: str) -> optax.GradientTransformation:
    """SGD with momentum and weight decay, after StableGrad or AGC if asked."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; one of {sorted(VARIANTS)}")
    reference = stablegrad_reference(config, variant)
    before = []
    if reference is not None:
        before.append(sgo.stablegrad(reference))
    if VARIANTS[variant].agc:
        before.append(optax.adaptive_grad_clip(config.agc_clipping))
    return optax.chain(
        *before,
        optax.add_decayed_weights(config.weight_decay),
        optax.sgd(config.learning_rate, momentum=config.momentum),
    )


class TrainState(NamedTuple):
    params: Any
    batch_stats: Any  # {} without BatchNorm
    opt_state: Any


def cross_entropy(logits, labels):
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def forward(model, state: TrainState, images, train: bool):
    """(logits, new batch statistics); BatchNorm updates them only in training."""
    if not state.batch_stats:
        return model.apply({"params": state.params}, images), state.batch_stats
    variables = {"params": state.params, "batch_stats": state.batch_stats}
    if not train:
        return model.apply(variables, images, train=False), state.batch_stats
    logits, updates = model.apply(variables, images, mutable=["batch_stats"])
    return logits, updates["batch_stats"]


def sample_batch(augment, data, batch_size, key):
    """A random batch of `data` (images, labels), sampled and augmented with `key`."""
    images, labels = data
    pick, crop = jax.random.split(key)
    index = jax.random.choice(pick, len(images), (batch_size,), replace=False)
    return augment(crop, images[index]), labels[index]


def train_step(
    model, tx, augment, data, batch_size, state: TrainState, key, *, prediction=False
):
    """One SGD step on a random batch (sampled and augmented with `key`).

    With `prediction`, StableGrad gets ``reference_scale``: the std of the
    loss gradient with respect to the logits (the prediction), from the same
    backward pass as the parameter gradients.
    """
    x, y = sample_batch(augment, data, batch_size, key)

    def predict(params):  # (logits, new batch statistics)
        return forward(model, state._replace(params=params), x, True)

    def loss_fn(params):
        logits, stats = predict(params)
        return cross_entropy(logits, y), stats

    extra = {}
    if prediction:
        (loss, stats), grads, extra["reference_scale"] = sgo.prediction_value_and_grad(
            predict, lambda logits: cross_entropy(logits, y), predict_has_aux=True
        )(state.params)
    else:
        (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params, **extra)
    params = optax.apply_updates(state.params, updates)
    return TrainState(params, stats, opt_state), loss


def eval_step(model, state: TrainState, images, labels):
    """(summed loss, number correct) over a batch, BatchNorm in inference mode."""
    logits, _ = forward(model, state, images, False)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    return loss.sum(), (jnp.argmax(logits, -1) == labels).sum()


def create_train_state(model, tx, sample, seed: int) -> TrainState:
    # An rbg key: with the default (threefry) one, compiling a conv net's init
    # takes several times longer on CPU.
    variables = model.init(jax.random.key(seed, impl="rbg"), sample, train=False)
    params = variables["params"]
    return TrainState(params, variables.get("batch_stats", {}), tx.init(params))


def evaluate(model, state, images, labels, batch: int = 500) -> tuple[float, float]:
    """(mean loss, accuracy) over a split, in batches."""
    step = jax.jit(functools.partial(eval_step, model))
    totals = [
        step(state, images[i : i + batch], labels[i : i + batch])
        for i in range(0, len(images), batch)
    ]
    loss = sum(float(t[0]) for t in totals) / len(images)
    return loss, sum(int(t[1]) for t in totals) / len(images)


def train_variant(config, data, variant: str, progress) -> dict[str, Any]:
    """Trains one variant; its loss per chunk, final metrics and timing."""
    model = create_model(config, variant, data.num_classes)
    tx = create_optimizer(config, variant)
    train = (jnp.asarray(data.train_images), jnp.asarray(data.train_labels))
    state = jax.jit(functools.partial(create_train_state, model, tx))(
        train[0][:1], config.seed
    )
    augment = input_pipeline.augmentation(config)
    step = functools.partial(
        train_step,
        model,
        tx,
        augment,
        train,
        config.batch_size,
        prediction=stablegrad_reference(config, variant) == "prediction",
    )
    # A Python loop of jitted steps, not `lax.scan`: on XLA's CPU backend a
    # convolution inside a scan runs many times slower.
    step = jax.jit(step)
    # The same batches for every variant: the key depends on the seed only.
    keys = jax.random.split(jax.random.key(config.seed + 1), config.steps)
    losses, first_nonfinite, start = [], 0, None
    for begin in range(0, config.steps, config.log_every):
        loss = []
        for key in keys[begin : begin + config.log_every]:
            state, value = step(state, key)
            loss.append(value)
        loss = np.asarray(jnp.stack(loss))  # one host sync per chunk
        if start is None:  # the first chunk includes compilation
            start = time.perf_counter()
        bad = np.flatnonzero(~np.isfinite(loss))
        if bad.size and not first_nonfinite:
            first_nonfinite = begin + int(bad[0]) + 1
        losses.append(float(np.mean(loss)))
        progress.update(len(loss))
        progress.set_postfix(variant=variant, loss=f"{losses[-1]:.3g}")
        if first_nonfinite:
            break
    chunks = max(len(losses) - 1, 1)
    seconds_per_step = (time.perf_counter() - start) / (chunks * config.log_every)
    result = {
        "variant": variant,
        "loss_per_chunk": [x if math.isfinite(x) else None for x in losses],
        "first_nonfinite_step": first_nonfinite,
        "seconds_per_step": seconds_per_step,
    }
    if first_nonfinite:
        return result | {"train_loss": None, "test_loss": None, "test_accuracy": None}
    train_loss, _ = evaluate(model, state, *train)
    test = (jnp.asarray(data.test_images), jnp.asarray(data.test_labels))
    test_loss, accuracy = evaluate(model, state, *test)
    return result | {
        "train_loss": train_loss,
        "test_loss": test_loss,
        "test_accuracy": accuracy,
    }


def train_and_evaluate(config, outdir) -> dict[str, Any]:
    """Trains every variant of `config`, then writes the table and the plot."""
    from tqdm.auto import tqdm

    meta = run_metadata()  # when the run starts: the code it runs
    data = input_pipeline.get_dataset(config)
    runs = []
    with tqdm(
        total=config.steps * len(config.variants), disable=not config.progress
    ) as progress:
        for variant in config.variants:
            runs.append(train_variant(config, data, variant, progress))
    return report.write(config, data, runs, outdir, meta)
