"""Whole jitted training steps, as overhead.py times them.

Model steps (section ``model_steps``): ``pinn32`` (Poisson, depth-32 width-50
tanh MLP, 256 + 256 points, ``pinn.make_chunk`` of ``--chunk`` steps) and, on a
GPU or with ``--model-steps``, ``resnet50_bs256`` (BN-free ResNet-50, CIFAR
stem, 32x32 images, batch ``--resnet-batch``, cross-entropy), each under the
optimizers of `STEP_OPTIMIZERS`.

Train steps (section ``train_steps``): the paper's variant against the output
reference, one model at a time: ``adam`` (``jax.value_and_grad`` +
``optax.adam``), ``stablegrad(output)+adam`` (``jax.value_and_grad`` +
``stablegrad("output")`` + Adam) and ``stablegrad(prediction)+adam`` (the
paper's: ``sgo.prediction_value_and_grad`` + ``stablegrad("prediction")`` +
Adam, ``reference_scale`` from the step's own backward pass). Models:
``pinn32`` (as above, through ``pinn.make_chunk`` with
``prediction_reference="data"`` for the paper's variant, which also logs the
three readings of the reference) and ``resnet18_w16`` (BN-free ResNet-18 of
width 16, CIFAR stem, random 32x32x3 images shaped like digits32, batch 32, 10
classes, cross-entropy; the prediction is the logits; one jitted step per
call). Besides the ratios to adam it records the ratio of the paper's step to
the output-reference step (``prediction_over_output``, by wall-clock and by CPU
time) and what XLA's cost model says of each compiled call (flops,
transcendentals, bytes accessed: ``xla_cost_per_call``, and their ratios).

Every builder takes ``(tx, prediction, config)`` and returns ``run(n)``, which
makes ``n`` calls and blocks; ``run.final_loss`` and ``run.xla_cost()``
describe it.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

import stablegrad_optax as sgo
from stablegrad_optax import models, pinn

from overhead_timing import jit, ratio_between, timed_section, xla_cost
from overhead_updates import LEARNING_RATE, optimizers

STEP_OPTIMIZERS = (
    "adam",
    "stablegrad+adam",
    "stablegrad(geometric_mean)+adam",
    "adaptive_grad_clip+adam",
    "lars",
)
PAPER, OUTPUT = "stablegrad(prediction)+adam", "stablegrad(output)+adam"


def pinn_step(tx, prediction: bool, config: argparse.Namespace):
    """`n` chunks of ``--chunk`` jitted PINN training steps (Poisson, depth 32).

    With `prediction`, `pinn.make_chunk` passes the ``"data"`` reading of the
    prediction reference (for ``stablegrad("prediction")``) and logs the three
    readings, as the published step was measured.
    """
    problem = pinn.get_problem("poisson")
    depth = 2 if config.quick else 32
    model = models.MLP(
        depth=depth, width=50, input_bounds=(problem.lower, problem.upper)
    )
    params = model.init(jax.random.key(config.seed), jnp.zeros((1, problem.dim)))
    points = 16 if config.quick else 256
    chunk = jit(
        pinn.make_chunk(
            problem,
            model.apply,
            tx,
            num_interior=points,
            num_boundary=points,
            length=config.chunk,
            prediction_reference="data" if prediction else None,
            log_readings=prediction,
        ),
        donate_argnums=0,
    )
    key = jax.random.key(config.seed + 1)
    carry = [pinn.TrainState(params, tx.init(params), key, jnp.zeros([], jnp.int32))]

    def run(n: int) -> None:
        state = carry[0]
        for _ in range(n):
            state, logs, *_ = chunk(state)
        carry[0] = jax.block_until_ready(state)
        run.final_loss = float(logs["loss"][-1])

    run.xla_cost = lambda: xla_cost(chunk.lower(carry[0]))
    return run


def resnet_steps(model, batch: int, seed: int, tx, prediction: bool):
    """`run(n)`: `n` jitted training steps of a BN-free ResNet on one random
    batch of 32x32 images (cross-entropy on the logits, which are the
    prediction). With `prediction`, the gradients and ``reference_scale`` come
    from `sgo.prediction_value_and_grad`; otherwise from `jax.value_and_grad`
    of the same loss.
    """
    kx, ky, kp = jax.random.split(jax.random.key(seed), 3)
    images = jax.random.normal(kx, (batch, 32, 32, 3))
    labels = jax.random.randint(ky, (batch,), 0, 10)
    params = model.init(kp, images[:1])["params"]

    def predict(p, x, y):
        del y
        return model.apply({"params": p}, x)

    def loss(logits, x, y):
        del x
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    if prediction:
        grad_fn = sgo.prediction_value_and_grad(predict, loss)
    else:
        composed = jax.value_and_grad(lambda p, x, y: loss(predict(p, x, y), x, y))
        grad_fn = lambda p, x, y: (*composed(p, x, y), None)

    @functools.partial(jit, donate_argnums=(0, 1))
    def step(params, opt_state):
        value, grads, scale = grad_fn(params, images, labels)
        extra = {} if scale is None else {"reference_scale": scale}
        updates, opt_state = tx.update(grads, opt_state, params, **extra)
        return optax.apply_updates(params, updates), opt_state, value

    carry = [params, tx.init(params)]

    def run(n: int) -> None:
        params, opt_state = carry
        for _ in range(n):
            params, opt_state, loss_value = step(params, opt_state)
        carry[:] = jax.block_until_ready([params, opt_state])
        run.final_loss = float(loss_value)

    run.xla_cost = lambda: xla_cost(step.lower(*carry))
    return run


def resnet50_step(tx, prediction: bool, config: argparse.Namespace):
    """`n` jitted training steps of a BN-free ResNet-50 (CIFAR stem)."""
    width, batch = (8, 4) if config.quick else (64, config.resnet_batch)
    model = models.ResNet50(norm="none", num_classes=10, width=width, stem="cifar")
    return resnet_steps(model, batch, config.seed, tx, prediction)


def resnet18_step(tx, prediction: bool, config: argparse.Namespace):
    """`n` jitted steps of a BN-free ResNet-18 on digits32-sized images."""
    width, batch = (2, 2) if config.quick else (16, 32)
    model = models.ResNet18(norm="none", num_classes=10, width=width, stem="cifar")
    return resnet_steps(model, batch, config.seed, tx, prediction)


MODEL_STEPS = {"pinn32": pinn_step, "resnet50_bs256": resnet50_step}
TRAIN_STEPS = {"pinn32": pinn_step, "resnet18_w16": resnet18_step}


def train_step_optimizers() -> dict[str, tuple[optax.GradientTransformation, bool]]:
    """{label: (tx, whether the step passes the prediction reference)}."""
    lr = LEARNING_RATE
    return {
        "adam": (optax.adam(lr), False),
        OUTPUT: (optax.chain(sgo.stablegrad("output"), optax.adam(lr)), False),
        PAPER: (optax.chain(sgo.stablegrad("prediction"), optax.adam(lr)), True),
    }


def steps_per_call(name: str, config: argparse.Namespace) -> int:
    """Training steps one call of a model step's `run` makes."""
    return config.chunk if name == "pinn32" else 1


def _final_losses(entries: dict[str, Callable[[int], None]]) -> dict[str, float]:
    return {label: run.final_loss for label, run in entries.items()}


def benchmark_model_step(name: str, config: argparse.Namespace) -> dict[str, Any]:
    txs = optimizers()
    labels = [k for k in STEP_OPTIMIZERS if k in config.optimizers]
    entries = {label: MODEL_STEPS[name](txs[label], False, config) for label in labels}
    print(f"{name}: full training step", flush=True)
    result = timed_section("train step", entries, config, steps_per_call(name, config))
    result["final_loss"] = _final_losses(entries)
    return result


def benchmark_train_step(name: str, config: argparse.Namespace) -> dict[str, Any]:
    """The paper's variant, the output reference and adam, in one set of rounds."""
    entries = {
        label: TRAIN_STEPS[name](tx, prediction, config)
        for label, (tx, prediction) in train_step_optimizers().items()
    }
    print(f"{name}: train step, the paper's variant against the output reference")
    result = timed_section("train step", entries, config, steps_per_call(name, config))
    result["prediction_over_output"] = ratio = ratio_between(result, PAPER, OUTPUT)
    result["final_loss"] = _final_losses(entries)
    # What XLA's cost model says each compiled call does (independent of
    # whatever else runs on the machine), and the paper's over the output's.
    cost = {label: run.xla_cost() for label, run in entries.items()}
    result["xla_cost_per_call"] = cost
    ratio["xla_cost"] = {k: cost[PAPER][k] / cost[OUTPUT][k] for k in cost[PAPER]}
    print(
        f"    {PAPER} / {OUTPUT}: {ratio['ratio']:.3f}x "
        f"({ratio['round_ratio_min']:.3f}-{ratio['round_ratio_max']:.3f}); CPU "
        f"time {ratio['cpu_ratio']:.3f}x ({ratio['cpu_round_ratio_min']:.3f}-"
        f"{ratio['cpu_round_ratio_max']:.3f}); XLA cost model "
        + ", ".join(f"{k} {v:.5f}x" for k, v in ratio["xla_cost"].items()),
        flush=True,
    )
    return result
