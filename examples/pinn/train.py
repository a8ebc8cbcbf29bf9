"""Training for the PINN example: small pure functions, in reading order.

`train_and_evaluate` builds the problem, the model and one set of initial
parameters, trains every optimizer of the config from them (over its own
learning-rate grid, on the same sequence of collocation points), and hands the
results to `report` for the JSON, the table and the figures.
"""

from __future__ import annotations

import math
import pathlib
import time
from typing import Any

import jax
import jax.numpy as jnp
import optax
from tqdm.auto import tqdm

import stablegrad_optax as sgo
from stablegrad_optax import init, pinn
from stablegrad_optax.models import ACTIVATIONS, MLP

import report
from common import agc_adam, run_metadata
from configs.default import DECAY_TO, OPTIMIZERS, Config


def create_problem(config: Config) -> pinn.Problem:
    return pinn.get_problem(config.problem, **config.problem_options)


def create_model(config: Config, problem: pinn.Problem) -> MLP:
    """The deep MLP, inputs mapped from the problem's box to [-1, 1]."""
    kernel_init, bias_init = init.get_initializers(
        config.init, ACTIVATIONS[config.activation]
    )
    return MLP(
        depth=config.depth,
        width=config.width,
        activation=config.activation,
        input_bounds=(problem.lower, problem.upper),
        kernel_init=kernel_init,
        bias_init=bias_init,
    )


PAPER = "stablegrad(prediction)+"  # the paper's StableGrad, before the base


def stablegrad_reference(name: str, config: Config) -> str | float | None:
    """The `stablegrad` reference an optimizer's name asks for (None: none)."""
    if name.startswith(PAPER):
        return "prediction"
    if name.startswith("stablegrad+"):
        return config.reference
    return None


def prediction_reading(name: str, config: Config) -> str | None:
    """`pinn.train`'s ``prediction_reference`` for an optimizer (None: none)."""
    return config.prediction_reading if name.startswith(PAPER) else None


def create_optimizer(
    name: str, learning_rate: float, config: Config
) -> optax.GradientTransformation:
    """Adam or SGD with momentum, after `stablegrad` if the name says so.

    ``agc+adam`` is `common.agc_adam` (AGC, then Adam); ``adam+decay`` decays
    the learning rate exponentially to `DECAY_TO` of its start over
    ``config.steps``.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}.")
    if name == "agc+adam":
        return agc_adam(learning_rate)
    if name == "adam+decay":
        return optax.adam(
            optax.exponential_decay(learning_rate, config.steps, decay_rate=DECAY_TO)
        )
    if name.endswith("adam"):
        tx = optax.adam(learning_rate)
    else:
        tx = optax.sgd(learning_rate, momentum=config.momentum)
    reference = stablegrad_reference(name, config)
    if reference is not None:
        return optax.chain(sgo.stablegrad(reference), tx)
    return tx


def gradient_profile(problem: pinn.Problem, apply_fn, config: Config, key: jax.Array):
    """A function: params -> per-layer gradient std, as is and after `stablegrad`.

    The gradient is taken on one fixed batch; the function is jitted once.
    """
    batch = problem.sample(key, config.num_interior, config.num_boundary)
    tx = sgo.stablegrad(config.reference)

    @jax.jit
    def stats(params):
        loss = lambda p: problem.loss(pinn.scalar_field(apply_fn, p), batch)
        grads = jax.grad(loss)(params)
        rescaled, _ = tx.update(grads, tx.init(params), params)
        return sgo.layer_statistics(grads), sgo.layer_statistics(rescaled)

    def profile(params) -> dict[str, dict[str, float]]:
        raw, rescaled = stats(params)
        as_floats = lambda d: {k: float(v) for k, v in d.items()}
        return {"raw": as_floats(raw), "stablegrad": as_floats(rescaled)}

    return profile


def train_one(
    problem: pinn.Problem,
    apply_fn,
    params,
    tx: optax.GradientTransformation,
    config: Config,
    key: jax.Array,
    desc: str,
    prediction_reference: str | None = None,
) -> tuple[dict[str, Any], Any]:
    """One run; returns its log and summary, and the final parameters.

    The time per step is measured over the full-length chunks after the first
    (which compiles), evaluation of the relative L2 error included; with fewer
    than two full chunks it is the whole run's, compilation included.
    """
    bar = tqdm(total=config.steps, desc=desc, disable=not config.progress)
    stamps = []

    def callback(record):
        stamps.append((record["step"], time.perf_counter()))
        bar.update(record["step"] - bar.n)
        bar.set_postfix(loss=f"{record['loss']:.3g}", rel_l2=f"{record['rel_l2']:.3g}")

    start = time.perf_counter()
    final_params, records = pinn.train(
        problem,
        apply_fn,
        params,
        tx,
        key=key,
        steps=config.steps,
        log_every=config.log_every,
        num_interior=config.num_interior,
        num_boundary=config.num_boundary,
        eval_resolution=config.eval_resolution,
        callback=callback,
        prediction_reference=prediction_reference,
    )
    bar.close()
    # Chunks of the full length after the first run compiled code; a shorter
    # last chunk compiles again.
    full = [(s, t) for s, t in stamps if s % config.log_every == 0]
    timed = len(full) > 1
    if timed:
        (first_step, first_time), (last_step, last_time) = full[0], full[-1]
        time_per_step = (last_time - first_time) / (last_step - first_step)
    else:
        time_per_step = (stamps[-1][1] - start) / stamps[-1][0]
    rel_l2 = [r["rel_l2"] for r in records]
    finite = [v for v in rel_l2 if math.isfinite(v)]
    run = {
        "diverged": records[-1]["diverged"],
        "final_rel_l2": rel_l2[-1],
        "best_rel_l2": min(finite) if finite else math.nan,
        "final_terms": {k: records[-1][k] for k in ("loss", *problem.weights())},
        "time_per_step_s": time_per_step,
        "time_per_step_includes_compilation": not timed,
        "wall_time_s": time.perf_counter() - start,
        "records": records,
    }
    return run, final_params


def choose(runs: dict[float, dict[str, Any]]) -> float:
    """The learning rate with the lowest final rel-L2; the first if none is finite."""
    usable = {
        lr: run["final_rel_l2"]
        for lr, run in runs.items()
        if not run["diverged"] and math.isfinite(run["final_rel_l2"])
    }
    return min(usable, key=usable.get) if usable else next(iter(runs))


def train_and_evaluate(config: Config, outdir: str | pathlib.Path) -> dict[str, Any]:
    """Trains every optimizer from the same start; writes and returns results."""
    start = time.perf_counter()
    meta = run_metadata()  # when the run starts: the code it runs
    problem = create_problem(config)
    model = create_model(config, problem)
    init_key, points_key, profile_key = jax.random.split(jax.random.key(config.seed), 3)
    params = model.init(init_key, jnp.zeros((1, problem.dim)))["params"]
    apply_fn = lambda p, x: model.apply({"params": p}, x)
    predict = jax.jit(lambda p, x: apply_fn(p, x)[:, 0])
    grid = problem.grid(config.eval_resolution)

    profile = gradient_profile(problem, apply_fn, config, profile_key)
    profiles = {"init": profile(params)}
    runs, chosen, predictions = {}, {}, {}
    for name in config.optimizers:
        runs[name], finals = {}, {}
        for lr in config.learning_rates[name]:
            tx = create_optimizer(name, lr, config)
            desc = f"{name} lr={lr:g}"
            run, finals[lr] = train_one(
                problem,
                apply_fn,
                params,
                tx,
                config,
                points_key,
                desc,
                prediction_reference=prediction_reading(name, config),
            )
            runs[name][lr] = {"learning_rate": lr, **run}
        chosen[name] = choose(runs[name])
        best = finals[chosen[name]]
        predictions[name] = predict(best, grid)
        profiles[name] = profile(best)

    results = {
        "meta": meta,
        "config": report.config_dict(config),
        "chosen_learning_rate": chosen,
        "gradient_std": profiles,
        "runs": {name: list(by_lr.values()) for name, by_lr in runs.items()},
    }
    results["meta"]["total_time_s"] = time.perf_counter() - start
    report.write(results, problem, predictions, outdir)
    return results
