"""A jitted PINN training loop: chunks of steps under `lax.scan`, logs between."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from stablegrad_optax import _diagnostics
from stablegrad_optax.pinn._problem import Problem

ApplyFn = Callable[[Any, jax.Array], jax.Array]  # (params, points (N, d)) -> (N, 1)


class TrainState(NamedTuple):
    """Parameters, optimizer state, PRNG key and step count of a run."""

    params: Any
    opt_state: Any
    key: jax.Array
    step: jax.Array  # shape=(), dtype=int32


def scalar_field(apply_fn: ApplyFn, params: Any) -> Callable[[jax.Array], jax.Array]:
    """The network as a map from one point (d,) to a scalar."""
    return lambda point: apply_fn(params, point[None])[0, 0]


def make_chunk(
    problem: Problem,
    apply_fn: ApplyFn,
    tx: optax.GradientTransformation,
    *,
    num_interior: int,
    num_boundary: int,
    length: int,
):
    """A jitted function running `length` steps, each on fresh collocation points.

    It returns the new `TrainState` and, per step, the weighted loss and each
    loss term, and for the last step the per-layer gradient statistics.
    """

    def loss_fn(params, batch):
        terms = problem.losses(scalar_field(apply_fn, params), batch)
        weights = problem.weights()
        return sum(weights[k] * v for k, v in terms.items()), terms

    def step(state: TrainState, _):
        key, sample_key = jax.random.split(state.key)
        batch = problem.sample(sample_key, num_interior, num_boundary)
        (loss, terms), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params, batch
        )
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        new_state = TrainState(params, opt_state, key, state.step + 1)
        return new_state, ({"loss": loss, **terms}, grads)

    @jax.jit
    def chunk(state: TrainState):
        state, (logs, grads) = jax.lax.scan(step, state, length=length)
        last = jax.tree.map(lambda g: g[-1], grads)
        return state, logs, _diagnostics.layer_statistics(last)

    return chunk


def train(
    problem: Problem,
    apply_fn: ApplyFn,
    params: Any,
    tx: optax.GradientTransformation,
    *,
    key: jax.Array,
    steps: int,
    log_every: int = 100,
    num_interior: int = 256,
    num_boundary: int = 256,
    eval_resolution: int = 101,
    callback: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[Any, list[dict[str, Any]]]:
    """Trains a PINN; returns the final parameters and one log record per chunk.

    Steps run `log_every` at a time inside one jitted `lax.scan` (no Python per
    step). After each chunk a record is made: the step, the mean of each loss
    term over the chunk, the relative L2 error on the evaluation grid, the
    per-layer gradient std of the chunk's last step and their imbalance.
    A non-finite loss stops the run early (the record says `diverged`).

    Args:
      problem: a `Problem`.
      apply_fn: the network, ``apply_fn(params, points) -> (N, 1)``.
      params: initial parameters.
      tx: any optax transformation.
      key: PRNG key for the collocation points.
      steps: number of steps.
      log_every: steps per chunk (the last chunk may be shorter).
      num_interior: interior points per step.
      num_boundary: boundary (and initial) points per step.
      eval_resolution: grid points per axis for the relative L2 error.
      callback: called with each record (e.g. to update a progress bar).

    Returns:
      (params, records).
    """
    if steps < 1 or log_every < 1:
        raise ValueError(
            f"steps and log_every must be >= 1, got steps={steps}, "
            f"log_every={log_every}."
        )
    state = TrainState(params, tx.init(params), key, jnp.zeros([], jnp.int32))
    predict = jax.jit(lambda p, x: apply_fn(p, x)[:, 0])
    grid = jnp.asarray(problem.grid(eval_resolution))
    reference = problem.reference_on_grid(eval_resolution)
    chunks: dict[int, Callable] = {}
    records = []
    done = 0
    while done < steps:
        length = min(log_every, steps - done)
        if length not in chunks:
            chunks[length] = make_chunk(
                problem,
                apply_fn,
                tx,
                num_interior=num_interior,
                num_boundary=num_boundary,
                length=length,
            )
        state, logs, grad_std = chunks[length](state)
        done += length
        grad_std = {k: float(v) for k, v in grad_std.items()}
        record = {k: float(jnp.mean(v)) for k, v in logs.items()}
        record["step"] = done
        record["rel_l2"] = float(
            jnp.linalg.norm(predict(state.params, grid) - reference)
            / jnp.linalg.norm(reference)
        )
        record["grad_std"] = grad_std
        record["imbalance"] = _diagnostics.imbalance(grad_std).ratio
        record["diverged"] = not all(
            bool(jnp.all(jnp.isfinite(v))) for v in logs.values()
        )
        records.append(record)
        if callback is not None:
            callback(record)
        if record["diverged"]:
            break
    return state.params, records
