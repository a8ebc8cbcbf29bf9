"""A jitted PINN training loop: chunks of steps under `lax.scan`, logs between."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from stablegrad_optax import _diagnostics, _prediction
from stablegrad_optax.pinn._problem import Problem, relative_l2

ApplyFn = Callable[[Any, jax.Array], jax.Array]  # (params, points (N, d)) -> (N, 1)
UpdateArgs = Callable[[Any, dict], dict[str, Any]]  # (params, batch) -> kwargs

# Readings of "the prediction" of a PINN, whose loss reads the network's values
# at the data points, its values at the collocation points and its derivatives
# there; each sets the std of dL/d(prediction) from some of those outputs.
PREDICTION_READINGS = ("data", "values", "all")
# Rules that set the loss terms' weights during training (None: the problem's
# fixed weights). "grad_norm": Wang, Teng & Perdikaris (2021), as jaxpi does it.
LOSS_WEIGHTINGS = ("grad_norm",)


def _check_reading(reading: str) -> None:
    if reading not in PREDICTION_READINGS:
        raise ValueError(
            f"prediction_reference must be one of {PREDICTION_READINGS} or None, "
            f"got {reading!r}."
        )


def reading_mask(outputs: dict, reading: str) -> dict:
    """`prediction_value_and_grad`'s ``reference_on`` for one reading.

    ``"data"``: u at the data points (boundary, initial) only; ``"values"``: u
    at every point, direct dependence only (what ``u.grad`` holds in a PyTorch
    PINN); ``"all"``: every output the loss reads, derivatives included.

    Args:
      outputs: the network's outputs as the trainer's loss reads them:
        ``{"values": {"interior": u, <data term>: u, ...}, "derivatives":
        {<name>: ...}}``, u at the collocation and data points and the
        residual's derivatives at the collocation points.
      reading: one of `PREDICTION_READINGS`.

    Returns:
      A pytree of bools over `outputs`.
    """
    _check_reading(reading)
    values = {
        name: reading != "data" or name != "interior" for name in outputs["values"]
    }
    derivatives = jax.tree.map(lambda _: reading == "all", outputs["derivatives"])
    return {"values": values, "derivatives": derivatives}


class TrainState(NamedTuple):
    """Parameters, optimizer state, PRNG key, step count and loss weights of a run."""

    params: Any
    opt_state: Any
    key: jax.Array
    step: jax.Array  # shape=(), dtype=int32
    # With a `loss_weighting`: {term name: weight}, float32 scalars; else None.
    loss_weights: dict[str, jax.Array] | None = None


def _check_weighting(loss_weighting, every, momentum) -> None:
    if loss_weighting is not None and loss_weighting not in LOSS_WEIGHTINGS:
        raise ValueError(
            f"loss_weighting must be one of {LOSS_WEIGHTINGS} or None, "
            f"got {loss_weighting!r}."
        )
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ValueError(f"loss_weighting_every must be an int >= 1, got {every!r}.")
    if not 0.0 <= momentum < 1.0:
        raise ValueError(
            f"loss_weighting_momentum must be in [0, 1), got {momentum!r}."
        )


def grad_norm_weights(
    grad_norms: dict[str, jax.Array],
    weights: dict[str, jax.Array],
    momentum: float = 0.9,
) -> dict[str, jax.Array]:
    r"""One update of the gradient-norm loss weights (Wang et al. 2021; jaxpi).

    .. math::

      \hat w_i = \frac{\operatorname{mean}_j \lVert g_j \rVert}
                       {\lVert g_i \rVert}, \qquad
      w_i \leftarrow m\, w_i + (1 - m)\, \hat w_i,

    with :math:`g_i` the gradient of the unweighted term :math:`i` over all
    parameters and :math:`m` = `momentum`. A term whose norm is zero or not
    finite keeps its weight and is left out of the mean; if no term has a
    usable norm, every weight is kept.

    Args:
      grad_norms: {term name: ||g_i||}, scalars.
      weights: {term name: w_i}, the current weights (same names).
      momentum: the EMA factor m, in [0, 1).

    Returns:
      The new weights, float32 scalars, by name.

    Examples:
      >>> import jax.numpy as jnp
      >>> from stablegrad_optax import pinn
      >>> norms = {"residual": jnp.float32(30.0), "boundary": jnp.float32(10.0)}
      >>> ones = {"residual": jnp.float32(1.0), "boundary": jnp.float32(1.0)}
      >>> new = pinn.grad_norm_weights(norms, ones, momentum=0.9)
      >>> print(f"{float(new['residual']):.3f} {float(new['boundary']):.3f}")
      0.967 1.100
    """
    names = sorted(grad_norms)
    norms = jnp.stack([jnp.asarray(grad_norms[n], jnp.float32) for n in names])
    usable = jnp.isfinite(norms) & (norms > 0)
    count = jnp.sum(usable)
    mean = jnp.sum(jnp.where(usable, norms, 0.0)) / jnp.maximum(count, 1)
    target = mean / jnp.where(usable, norms, 1.0)
    old = jnp.stack([jnp.asarray(weights[n], jnp.float32) for n in names])
    new = momentum * old + (1.0 - momentum) * target
    new = jnp.where(usable & jnp.isfinite(new), new, old)
    return {n: new[i] for i, n in enumerate(names)}


def _weight_update(
    problem: Problem,
    apply_fn: ApplyFn,
    *,
    num_interior: int,
    num_boundary: int,
    momentum: float = 0.9,
):
    """``state -> state`` with the loss weights updated by `grad_norm_weights`.

    The per-term gradients are taken on the batch the state's next step
    samples (the same points, the key unchanged). Wrap it in `jax.jit` (and
    `jax.vmap` for several seeds).
    """

    def terms_of(params, batch):
        return problem.losses(scalar_field(apply_fn, params), batch)

    def update(state: TrainState) -> TrainState:
        _, sample_key = jax.random.split(state.key)
        batch = problem.sample(sample_key, num_interior, num_boundary)
        grads = jax.jacrev(terms_of)(state.params, batch)
        norms = {name: optax.tree.norm(g) for name, g in grads.items()}
        weights = grad_norm_weights(norms, state.loss_weights, momentum)
        return state._replace(loss_weights=weights)

    return update


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
    update_args: UpdateArgs | None = None,
    prediction_reference: str | None = None,
    log_readings: bool = False,
    loss_weighting: str | None = None,
):
    """A function running `length` steps, each on fresh collocation points.

    It returns the new `TrainState` and, per step, the weighted loss and each
    loss term (and, with `prediction_reference`, the std of dL/d(prediction)
    under that reading, or under every reading of `PREDICTION_READINGS` with
    `log_readings`, by reading), and for the last step the per-layer gradient
    statistics. Wrap it in `jax.jit` (and `jax.vmap` for several seeds).
    `update_args(params, batch)`, if given, returns extra keyword arguments
    for ``tx.update`` at each step. `prediction_reference`, if given, passes
    ``reference_scale=`` (for ``stablegrad("prediction")``): the std of
    dL/d(prediction) under that reading, from the step's own backward pass;
    the other readings are computed only with `log_readings` (see `train`).
    With `loss_weighting`, the terms are weighted by the state's
    ``loss_weights`` instead of the problem's fixed weights.
    """
    if prediction_reference is not None:
        _check_reading(prediction_reference)
    _check_weighting(loss_weighting, 1, 0.0)

    def predict(params, batch, weights):
        del weights
        return problem._outputs(scalar_field(apply_fn, params), batch)

    def loss_of(outputs, batch, weights):
        terms = problem._losses_of(outputs, batch)
        return problem._weighted_sum(terms, weights), terms

    def loss_fn(params, batch, weights):
        return loss_of(predict(params, batch, weights), batch, weights)

    with_cotangent = _prediction.prediction_cotangent(predict, loss_of, has_aux=True)
    readings = PREDICTION_READINGS if log_readings else (prediction_reference,)

    def step(state: TrainState, _):
        key, sample_key = jax.random.split(state.key)
        batch = problem.sample(sample_key, num_interior, num_boundary)
        extra = {} if update_args is None else update_args(state.params, batch)
        weights = problem.weights() if loss_weighting is None else state.loss_weights
        scales = {}
        if prediction_reference is None:
            (loss, terms), grads = jax.value_and_grad(loss_fn, has_aux=True)(
                state.params, batch, weights
            )
        else:
            (loss, terms), grads, (outputs, cotangent) = with_cotangent(
                state.params, batch, weights
            )
            for reading in readings:
                parts = _prediction.selected(
                    outputs, cotangent, reading_mask(outputs, reading)
                )
                scales[reading] = _prediction.prediction_std(parts)
            extra["reference_scale"] = scales[prediction_reference]
        updates, opt_state = tx.update(grads, state.opt_state, state.params, **extra)
        params = optax.apply_updates(state.params, updates)
        new_state = state._replace(
            params=params, opt_state=opt_state, key=key, step=state.step + 1
        )
        return new_state, ({"loss": loss, **terms}, scales, grads)

    def chunk(state: TrainState):
        state, (logs, scales, grads) = jax.lax.scan(step, state, length=length)
        last = jax.tree.map(lambda g: g[-1], grads)
        return state, logs, scales, _diagnostics.layer_statistics(last)

    return chunk


def _seed_shape(key: jax.Array) -> tuple[int, ...]:
    """() for one PRNG key, (num_seeds,) for a batch of keys."""
    typed = jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
    shape = key.shape if typed else key.shape[:-1]  # raw keys end in (2,)
    if len(shape) > 1:
        raise ValueError(
            "key must be one PRNG key or a batch of keys with one leading seed "
            f"axis, got shape {key.shape}."
        )
    return shape


def _host(value: jax.Array, batched: bool):
    """A float, or a list of floats (one per seed) when batched."""
    value = jax.device_get(value)
    return [float(v) for v in value] if batched else float(value)


def _record(step, logs, scales, grad_std, rel_l2, batched) -> dict[str, Any]:
    """One chunk's log record (values per seed when batched), on the host."""
    finite = jnp.all(
        jnp.stack([jnp.all(jnp.isfinite(v), axis=-1) for v in logs.values()]),
        axis=0,
    )
    record = {k: _host(jnp.mean(v, axis=-1), batched) for k, v in logs.items()}
    record["step"] = step
    record["rel_l2"] = _host(rel_l2, batched)
    record["grad_std"] = {k: _host(v, batched) for k, v in grad_std.items()}
    if scales:
        record["reference_scale"] = {
            k: _host(jnp.mean(v, axis=-1), batched) for k, v in scales.items()
        }
    if batched:
        per_seed = [
            {k: v[i] for k, v in record["grad_std"].items()}
            for i in range(len(record["rel_l2"]))
        ]
        record["imbalance"] = [_diagnostics.imbalance(g).ratio for g in per_seed]
        record["diverged"] = [not bool(f) for f in finite]
    else:
        record["imbalance"] = _diagnostics.imbalance(record["grad_std"]).ratio
        record["diverged"] = not bool(finite)
    return record


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
    opt_state: Any = None,
    update_args: UpdateArgs | None = None,
    prediction_reference: str | None = None,
    log_readings: bool = False,
    loss_weighting: str | None = None,
    loss_weighting_every: int = 100,
    loss_weighting_momentum: float = 0.9,
) -> tuple[Any, list[dict[str, Any]]]:
    """Trains a PINN, one seed or several at once; the final parameters and records.

    Steps run `log_every` at a time inside one jitted `lax.scan` (no Python per
    step). After each chunk a record is made: the step, the mean of each loss
    term over the chunk, the relative L2 error on the evaluation grid, the
    per-layer gradient std of the chunk's last step and their imbalance, and
    with `prediction_reference` the chunk's mean std of dL/d(prediction) under
    that reading, or under each reading with `log_readings`
    (``record["reference_scale"]``, by reading). A non-finite loss stops the
    run early (the record says `diverged`).

    Several seeds train together, by `jax.vmap`, when `key` is a batch of keys
    (``jax.random.split(key, num_seeds)``) and `params` carry the same leading
    seed axis (e.g. ``jax.vmap(model.init, in_axes=(0, None))(init_keys, x)``).
    Then every record value is a list with one entry per seed, and the run
    stops when every seed has diverged. The runs may differ in more than the
    seed: pass an `opt_state` stacked over runs, e.g. with per-run learning
    rates in the hyperparameters of an `optax.inject_hyperparams` state.

    Args:
      problem: a `Problem`.
      apply_fn: the network, ``apply_fn(params, points) -> (N, 1)``.
      params: initial parameters (stacked over seeds for several).
      tx: any optax transformation.
      key: PRNG key for the collocation points, or one key per seed: shape
        (num_seeds,) for typed keys, (num_seeds, 2) for raw ones.
      steps: number of steps.
      log_every: steps per chunk (the last chunk may be shorter).
      num_interior: interior points per step.
      num_boundary: boundary (and initial) points per step.
      eval_resolution: grid points per axis for the relative L2 error.
      callback: called with each record (e.g. to update a progress bar).
      opt_state: the initial optimizer state (stacked over seeds for several);
        None gives ``tx.init(params)``, vmapped over seeds.
      update_args: a function ``(params, batch) -> dict`` of extra keyword
        arguments for ``tx.update`` at every step; None for none.
      prediction_reference: for ``stablegrad("prediction")``: which reading of
        the prediction sets ``reference_scale`` at every step (see
        `reading_mask`): ``"data"`` (u at the data points; the one the depth
        sweep measured), ``"values"`` or ``"all"``. It comes from the step's
        own backward pass (no second forward pass). None passes none.
      log_readings: with `prediction_reference`, also compute and log the std
        under the other readings of `PREDICTION_READINGS` at every step (only
        the reading in use otherwise); without it, nothing is logged.
      loss_weighting: None for the problem's fixed term weights, or
        ``"grad_norm"``: every term starts at weight 1 and, at step 0 and every
        `loss_weighting_every` steps after, moves towards the mean of the
        terms' gradient norms over its own (`grad_norm_weights`; Wang, Teng &
        Perdikaris 2021, as in jaxpi). The weights are part of each seed's
        state and ``record["loss_weights"]`` logs them; the per-term gradients
        are computed only at those steps, between scanned chunks.
      loss_weighting_every: steps between weight updates (K), >= 1.
      loss_weighting_momentum: the EMA factor of the weight update, in [0, 1).

    Returns:
      (params, records), params stacked over seeds for several.

    Raises:
      ValueError: for `steps` or `log_every` below 1, a `key` with more than
        one seed axis, an unknown `loss_weighting`, `loss_weighting_every`
        below 1 or `loss_weighting_momentum` outside [0, 1).

    References:
      Wang, Teng & Perdikaris, `Understanding and mitigating gradient flow
      pathologies in physics-informed neural networks
      <https://arxiv.org/abs/2001.04536>`_, SIAM J. Sci. Comput., 2021;
      Wang et al., `An expert's guide to training physics-informed neural
      networks <https://arxiv.org/abs/2308.08468>`_, 2023 (jaxpi)
    """
    if steps < 1 or log_every < 1:
        raise ValueError(
            f"steps and log_every must be >= 1, got steps={steps}, "
            f"log_every={log_every}."
        )
    _check_weighting(loss_weighting, loss_weighting_every, loss_weighting_momentum)
    seeds = _seed_shape(key)
    batched = bool(seeds)
    lift = jax.vmap if batched else lambda f: f
    if opt_state is None:
        opt_state = lift(tx.init)(params)
    weights = None
    if loss_weighting is not None:
        names = problem.weights()
        weights = {name: jnp.ones(seeds, jnp.float32) for name in names}
    state = TrainState(params, opt_state, key, jnp.zeros(seeds, jnp.int32), weights)
    predict = jax.jit(jax.vmap(apply_fn, in_axes=(0, None)) if batched else apply_fn)
    grid = jnp.asarray(problem.grid(eval_resolution))
    reference = jnp.asarray(problem.reference_on_grid(eval_resolution))
    sizes = dict(num_interior=num_interior, num_boundary=num_boundary)
    reweight = None
    if loss_weighting is not None:
        reweight = _weight_update(
            problem, apply_fn, momentum=loss_weighting_momentum, **sizes
        )
        reweight = jax.jit(lift(reweight))

    def rel_l2(params):
        return relative_l2(predict(params, grid), reference)

    def run(state, length):
        if length not in chunks:
            body = make_chunk(
                problem,
                apply_fn,
                tx,
                length=length,
                update_args=update_args,
                prediction_reference=prediction_reference,
                log_readings=log_readings,
                loss_weighting=loss_weighting,
                **sizes,
            )
            chunks[length] = jax.jit(lift(body))
        return chunks[length](state)

    # Segments end at every log point and, with a weighting, at every weight
    # update (the step counter is shared by the seeds, so an update is a host
    # decision: no per-step branch under vmap).
    every = loss_weighting_every if reweight is not None else steps
    chunks: dict[int, Callable] = {}
    records = []
    done = 0
    while done < steps:
        parts = []
        end = min(done + log_every, steps)
        while done < end:
            if reweight is not None and done % every == 0:
                state = reweight(state)
            length = min(end, (done // every + 1) * every) - done
            state, logs, scales, grad_std = run(state, length)
            parts.append((logs, scales))
            done += length
        logs, scales = jax.tree.map(lambda *xs: jnp.concatenate(xs, axis=-1), *parts)
        record = _record(done, logs, scales, grad_std, rel_l2(state.params), batched)
        if state.loss_weights is not None:
            record["loss_weights"] = {
                k: _host(v, batched) for k, v in state.loss_weights.items()
            }
        records.append(record)
        if callback is not None:
            callback(record)
        if all(record["diverged"]) if batched else record["diverged"]:
            break
    return state.params, records
