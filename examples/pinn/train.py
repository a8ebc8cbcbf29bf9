"""Training for the PINN example: small pure functions, in reading order.

`train_and_evaluate` builds the problem and the model, trains every recipe of
the config from the same initial parameters and collocation points (one set
per seed, the seeds trained together under `jax.vmap`), and hands the results
to `report` for the JSON, the table and the figures.
"""

from __future__ import annotations

import csv
import math
import pathlib
import statistics
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from tqdm.auto import tqdm

import stablegrad_optax as sgo
from stablegrad_optax import init, pinn
from stablegrad_optax.models import ACTIVATIONS, MLP

import report
from common import ROOT, run_metadata
from configs.default import Config

# The long-budget campaign's results: the same cells at 20,000 steps.
CAMPAIGN = ROOT / "benchmarks" / "results" / "pinn_long_budget.csv"
CAMPAIGN_STEPS = 20000


class Recipe(NamedTuple):
    """An optimizer built from a learning-rate schedule, and what `pinn.train`
    passes with it."""

    make: Callable[[optax.Schedule], optax.GradientTransformation]
    # Whether `pinn.train` passes the paper's reference, the std of dL/du
    # (read as `Config.prediction_reading` says), at every step.
    prediction_reference: bool = False
    loss_weighting: str | None = None  # `pinn.train`'s loss_weighting


def _paper_stablegrad(schedule: optax.Schedule) -> optax.GradientTransformation:
    """The paper's StableGrad (every layer to the std of dL/du), then Adam."""
    return optax.chain(sgo.stablegrad("prediction"), optax.adam(schedule))


RECIPES: dict[str, Recipe] = {
    "adam+warmup+decay+gradnorm": Recipe(optax.adam, loss_weighting="grad_norm"),
    "stablegrad(prediction)+adam+warmup+decay+gradnorm": Recipe(
        _paper_stablegrad, prediction_reference=True, loss_weighting="grad_norm"
    ),
    "adam+warmup+decay": Recipe(optax.adam),
    "stablegrad(prediction)+adam+warmup+decay": Recipe(
        _paper_stablegrad, prediction_reference=True
    ),
}


def create_problem(config: Config) -> pinn.Problem:
    return pinn.get_problem(config.problem)


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


def create_schedule(config: Config) -> optax.Schedule:
    """jaxpi's schedule: linear warmup to the peak, then exponential decay."""
    warmup = max(1, round(config.warmup_fraction * config.steps))
    return optax.warmup_exponential_decay_schedule(
        init_value=0.0,
        peak_value=config.learning_rate,
        warmup_steps=warmup,
        transition_steps=max(1, config.steps - warmup),
        decay_rate=config.decay_to,
    )


def create_optimizer(name: str, config: Config) -> optax.GradientTransformation:
    if name not in RECIPES:
        raise ValueError(f"recipe must be one of {list(RECIPES)}, got {name!r}.")
    return RECIPES[name].make(create_schedule(config))


def seed_keys(seeds) -> tuple[jax.Array, jax.Array]:
    """Per seed, the key of the initial parameters and of the points (the
    campaign's split)."""
    keys = jax.vmap(lambda s: jax.random.split(jax.random.key(s)))(jnp.asarray(seeds))
    return keys[:, 0], keys[:, 1]


def train_recipe(
    name: str, problem, model, params, data_keys, config: Config
) -> tuple[dict[str, Any], Any]:
    """Trains one recipe on every seed at once; its log and summary, and the
    final parameters (stacked over seeds).

    The time per step (of the seeds together) is measured from the end of the
    first chunk, which compiles, to the end of the run; with a single chunk it
    is the whole run's, compilation included.
    """
    recipe = RECIPES[name]
    bar = tqdm(total=config.steps, desc=name, disable=not config.progress)
    stamps = []

    def callback(record):
        stamps.append((record["step"], time.perf_counter()))
        bar.update(record["step"] - bar.n)
        bar.set_postfix(rel_l2=f"{statistics.median(record['rel_l2']):.3g}")

    start = time.perf_counter()
    final_params, records = pinn.train(
        problem,
        model.apply,
        params,
        create_optimizer(name, config),
        key=data_keys,
        steps=config.steps,
        log_every=config.log_every,
        num_interior=config.num_interior,
        num_boundary=config.num_boundary,
        eval_resolution=config.eval_resolution,
        callback=callback,
        prediction_reference=(
            config.prediction_reading if recipe.prediction_reference else None
        ),
        loss_weighting=recipe.loss_weighting,
        loss_weighting_every=config.loss_weighting_every,
    )
    bar.close()
    timed = len(stamps) > 1
    if timed:
        (first_step, first_time), (last_step, last_time) = stamps[0], stamps[-1]
        time_per_step = (last_time - first_time) / (last_step - first_step)
    else:
        time_per_step = (stamps[-1][1] - start) / stamps[-1][0]
    run = {
        "final_rel_l2": records[-1]["rel_l2"],
        "best_rel_l2": [
            min((v for v in seed if math.isfinite(v)), default=math.nan)
            for seed in zip(*(r["rel_l2"] for r in records), strict=True)
        ],
        "diverged": records[-1]["diverged"],
        "time_per_step_s": time_per_step,
        "time_per_step_includes_compilation": not timed,
        "wall_time_s": time.perf_counter() - start,
        "records": records,
    }
    return run, final_params


def campaign_results(config: Config, path: pathlib.Path = CAMPAIGN) -> dict:
    """The campaign's final rel-L2 per seed for this cell at 20,000 steps, by
    recipe (empty where the campaign has no such rows)."""
    if not path.is_file():
        return {}
    cell = {
        "problem": config.problem,
        "depth": str(config.depth),
        "width": str(config.width),
        "activation": config.activation,
        "init": config.init,
        "steps": str(CAMPAIGN_STEPS),
    }
    found: dict[str, list[float]] = {}
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            if row["optimizer"] in config.recipes and all(
                row[k] == v for k, v in cell.items()
            ):
                found.setdefault(row["optimizer"], []).append(
                    float(row["final_rel_l2"])
                )
    return found


def train_and_evaluate(config: Config, outdir: str | pathlib.Path) -> dict[str, Any]:
    """Trains every recipe from the same start; writes and returns results."""
    start = time.perf_counter()
    meta = run_metadata()  # when the run starts: the code it runs
    problem = create_problem(config)
    model = create_model(config, problem)
    init_keys, data_keys = seed_keys(config.seeds)
    x = jnp.zeros((1, problem.dim))
    params = jax.vmap(model.init, in_axes=(0, None))(init_keys, x)
    predict = jax.jit(jax.vmap(model.apply, in_axes=(0, None)))
    grid = problem.grid(config.eval_resolution)

    runs, predictions = {}, {}
    for name in config.recipes:
        runs[name], final_params = train_recipe(
            name, problem, model, params, data_keys, config
        )
        predictions[name] = predict(final_params, grid)[..., 0]

    results = {
        "meta": meta,
        "config": report.config_dict(config),
        "runs": runs,
        "campaign": campaign_results(config),
    }
    results["meta"]["total_time_s"] = time.perf_counter() - start
    report.write(results, problem, predictions, outdir)
    return results
