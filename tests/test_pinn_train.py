"""The jitted PINN training loop."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import stablegrad_optax as sgo
from stablegrad_optax import pinn
from stablegrad_optax.models import MLP


def _setup(name="poisson", depth=2, width=8, **options):
    problem = pinn.get_problem(name, **options)
    model = MLP(depth=depth, width=width, input_bounds=(problem.lower, problem.upper))
    params = model.init(jax.random.key(0), jnp.ones((1, problem.dim)))
    return problem, model, params


# A short run: 4 steps in chunks of 2, on few points.
SHORT_RUN = dict(
    key=jax.random.key(2),
    steps=4,
    log_every=2,
    num_interior=32,
    num_boundary=16,
    eval_resolution=9,
)


def _train(problem, model, params, tx, **settings):
    """`pinn.train` with SHORT_RUN's settings, or those given instead."""
    return pinn.train(problem, model.apply, params, tx, **{**SHORT_RUN, **settings})


def test_records_per_chunk_with_a_partial_last_chunk():
    problem, model, params = _setup("burgers")
    seen = []
    _, records = _train(
        problem,
        model,
        params,
        sgo.stablegrad_adam(1e-3),
        key=jax.random.key(1),
        steps=6,
        log_every=4,
        callback=seen.append,
    )
    assert [r["step"] for r in records] == [4, 6] and seen == records
    record = records[-1]
    assert {"loss", "residual", "boundary", "initial", "rel_l2"} <= set(record)
    assert set(record["grad_std"]) == {
        "params/head",
        "params/hidden_0",
        "params/hidden_1",
    }
    assert np.isfinite(record["rel_l2"]) and not record["diverged"]
    assert record["imbalance"] >= 1.0


def test_training_reduces_the_loss_and_the_error():
    problem, model, params = _setup("poisson", width=16, k=1, boundary_weight=10.0)
    tx = optax.chain(sgo.stablegrad(), optax.adam(1e-2))
    longer = dict(steps=300, log_every=100, num_interior=64, num_boundary=64)
    _, records = _train(
        problem, model, params, tx, key=jax.random.key(1), eval_resolution=21, **longer
    )
    assert records[-1]["loss"] < 0.1 * records[0]["loss"]
    assert records[-1]["rel_l2"] < records[0]["rel_l2"]
    assert "loss_weights" not in records[-1]  # no weighting by default


def test_divergence_stops_the_run():
    problem, model, params = _setup("poisson")
    _, records = _train(
        problem,
        model,
        params,
        optax.sgd(1e12),
        key=jax.random.key(1),
        steps=50,
        log_every=5,
        num_interior=16,
        eval_resolution=5,
    )
    assert records[-1]["diverged"] and len(records) < 10


@pytest.mark.parametrize(
    "settings, match",
    [
        (dict(steps=0), "steps"),
        (dict(log_every=0), "log_every"),
        (dict(key=jax.random.split(jax.random.key(0), (2, 3))), "seed axis"),
        (dict(key=jnp.zeros((2, 3, 2), jnp.uint32)), "seed axis"),
    ],
)
def test_bad_settings_raise(settings, match):
    problem, model, params = _setup()
    with pytest.raises(ValueError, match=match):
        _train(problem, model, params, optax.adam(1e-3), **settings)


def _seed_batch(model, seeds, x):
    """Initial params stacked over `seeds` and one collocation key per seed."""
    init_keys = jax.random.split(jax.random.key(0), seeds)
    params = jax.vmap(model.init, in_axes=(0, None))(init_keys, x)
    return init_keys, params, jax.random.split(jax.random.key(1), seeds)


@pytest.mark.parametrize(
    "raw",
    [False, pytest.param(True, marks=pytest.mark.slow)],
    ids=["typed_keys", "raw_keys"],
)
def test_seeds_by_vmap_match_single_runs(raw):
    """A batch of keys trains one run per key: typed (n,) or raw uint32 (n, 2)."""
    problem, model, _ = _setup("poisson")
    x = jnp.ones((1, 2))
    init_keys, batched, data_keys = _seed_batch(model, 3, x)
    if raw:
        data_keys = jax.random.key_data(data_keys)
        assert data_keys.shape == (3, 2)
    tx = sgo.stablegrad_adam(1e-2)
    settings = dict(key=data_keys, steps=8, log_every=4)
    _, records = _train(problem, model, batched, tx, **settings)
    assert len(records[-1]["rel_l2"]) == 3 and len(records[-1]["imbalance"]) == 3
    assert [len(v) for v in records[-1]["grad_std"].values()] == [3, 3, 3]
    settings["key"] = data_keys[1]
    _, single = _train(problem, model, model.init(init_keys[1], x), tx, **settings)
    assert records[-1]["loss"][1] == pytest.approx(single[-1]["loss"], rel=1e-4)
    assert records[-1]["rel_l2"][1] == pytest.approx(single[-1]["rel_l2"], rel=1e-4)
    assert records[-1]["diverged"] == [False, False, False]


@pytest.mark.slow
def test_seeds_stop_when_every_seed_has_diverged():
    problem, model, _ = _setup("poisson")
    _, batched, data_keys = _seed_batch(model, 2, jnp.ones((1, 2)))
    tx = optax.inject_hyperparams(optax.sgd)(learning_rate=1.0)
    opt_state = jax.vmap(tx.init)(batched)
    opt_state.hyperparams["learning_rate"] = jnp.array([1e-6, 1e12])
    _, records = _train(problem, model, batched, tx, key=data_keys, opt_state=opt_state)
    # Seed 0 trains on: the run does not stop at seed 1's divergence.
    assert len(records) == 2 and records[-1]["diverged"] == [False, True]
    _, records = _train(
        problem, model, batched, optax.sgd(1e12), key=data_keys, steps=50
    )
    assert records[-1]["diverged"] == [True, True] and len(records) < 25


@pytest.mark.slow
def test_runs_with_their_own_learning_rates_match_single_runs():
    """A stacked `opt_state` gives each vmapped run its own hyperparameters."""
    problem, model, params = _setup("poisson")
    key = jax.random.key(1)
    settings = dict(key=key, steps=6, log_every=3)
    tx = optax.inject_hyperparams(sgo.stablegrad_adam)(learning_rate=1.0)
    learning_rates = jnp.array([1e-3, 3e-2])
    stacked = jax.tree.map(lambda x: jnp.stack([x, x]), params)
    opt_state = jax.vmap(tx.init)(stacked)
    opt_state.hyperparams["learning_rate"] = learning_rates
    _, records = _train(
        problem,
        model,
        stacked,
        tx,
        opt_state=opt_state,
        **{**settings, "key": jnp.stack([key, key])},
    )
    for i, lr in enumerate([1e-3, 3e-2]):
        _, single = _train(problem, model, params, sgo.stablegrad_adam(lr), **settings)
        assert records[-1]["loss"][i] == pytest.approx(single[-1]["loss"], rel=1e-4)
    assert records[-1]["loss"][0] != pytest.approx(records[-1]["loss"][1], rel=1e-2)


def test_update_args_reach_the_optimizer_at_every_step():
    """A reference_scale from update_args acts like the same constant reference."""
    problem, model, params = _setup("poisson")
    given = optax.chain(sgo.stablegrad("given"), optax.sgd(1e-3))
    _, records = _train(
        problem,
        model,
        params,
        given,
        update_args=lambda p, batch: {"reference_scale": 0.5},
    )
    constant = optax.chain(sgo.stablegrad(0.5), optax.sgd(1e-3))
    _, expected = _train(problem, model, params, constant)
    assert records[-1]["loss"] == pytest.approx(expected[-1]["loss"], rel=1e-5)
    assert records[-1]["rel_l2"] == pytest.approx(expected[-1]["rel_l2"], rel=1e-5)
    with pytest.raises(ValueError, match="reference_scale"):
        _train(problem, model, params, given)


def _second_pass_reference(problem, apply_fn, params, batch, weights=None):
    """The prediction reference computed apart: a second forward pass over the
    data points, then the std of the (weighted) data loss's gradient with
    respect to the prediction there."""
    names = [name for name in batch if f"{name}_values" in batch]
    weights = problem.weights() if weights is None else weights
    points = [batch[name] for name in names]
    sizes = np.cumsum([len(x) for x in points])[:-1]
    u = apply_fn(params, jnp.concatenate(points))[:, 0]

    def data_loss(u):
        parts = jnp.split(u, sizes)
        return sum(
            weights[name] * jnp.mean((part - batch[f"{name}_values"]) ** 2)
            for name, part in zip(names, parts, strict=True)
        )

    return np.std(np.asarray(jax.grad(data_loss)(u), np.float64))


@pytest.mark.parametrize(
    ("name", "weighting"),
    [
        pytest.param("poisson", None, marks=pytest.mark.slow),
        pytest.param("poisson", "grad_norm", marks=pytest.mark.slow),
        pytest.param("burgers", None, marks=pytest.mark.slow),
        ("burgers", "grad_norm"),
    ],
)
def test_prediction_reference_equals_a_second_forward_pass(name, weighting):
    """`prediction_reference="data"` gives the std of dL/du at the data points,
    from the step's own backward pass; under a loss weighting, of the weighted
    loss."""
    problem, model, params = _setup(name)
    tx = optax.chain(sgo.stablegrad("prediction"), optax.sgd(1e-3))
    key = jax.random.key(5)
    weights = None
    if weighting is not None:
        weights = {n: jnp.float32(0.5 + i) for i, n in enumerate(problem.weights())}
    state = pinn.TrainState(
        params, tx.init(params), key, jnp.zeros([], jnp.int32), weights
    )
    chunk = pinn.make_chunk(
        problem,
        model.apply,
        tx,
        num_interior=32,
        num_boundary=16,
        length=1,
        prediction_reference="data",
        loss_weighting=weighting,
    )
    new_state, _, scales, _ = jax.jit(chunk)(state)
    # The chunk's first step samples its batch from the second half of the key.
    batch = problem.sample(jax.random.split(key)[1], 32, 16)
    expected = _second_pass_reference(problem, model.apply, params, batch, weights)
    sg = optax.tree_utils.tree_get(new_state.opt_state, "StableGradState")
    assert float(sg.reference) == pytest.approx(expected, rel=1e-6)
    assert float(scales["data"][0]) == pytest.approx(expected, rel=1e-6)


def _predict(problem, apply_fn):
    """The trainer's prediction: every network output the losses read."""
    return lambda p, b: problem._outputs(pinn.scalar_field(apply_fn, p), b)


def _loss_of_outputs(problem):
    """The trainer's loss from those outputs, with the problem's weights."""
    return lambda out, b: problem._weighted_sum(problem._losses_of(out, b))


@pytest.mark.parametrize("name", ["poisson", "helmholtz", "burgers"])
def test_the_trainers_outputs_give_the_public_losses(name):
    problem, model, params = _setup(name)
    batch = problem.sample(jax.random.key(0), 32, 16)
    u = pinn.scalar_field(model.apply, params)
    outputs = _predict(problem, model.apply)(params, batch)
    public = problem.losses(u, batch)
    assert problem._losses_of(outputs, batch) == public
    assert _loss_of_outputs(problem)(outputs, batch) == problem.loss(u, batch)
    residual = jax.vmap(lambda p: problem.residual(u, p))(batch["interior"])
    assert float(public["residual"]) == pytest.approx(
        float(jnp.mean(residual**2)), rel=1e-6
    )


@pytest.mark.slow
def test_the_three_readings_of_the_prediction_gradient():
    problem, model, params = _setup("helmholtz")
    batch = problem.sample(jax.random.key(0), 32, 16)
    outputs = _predict(problem, model.apply)(params, batch)
    assert set(outputs["values"]) == {"interior", "boundary"}
    assert set(outputs["derivatives"]) == {"laplacian"}
    cotangent = jax.grad(lambda out: _loss_of_outputs(problem)(out, batch))(outputs)
    expected = {
        "data": [cotangent["values"]["boundary"]],
        "values": list(cotangent["values"].values()),
        "all": jax.tree.leaves(cotangent),
    }
    for reading in pinn.PREDICTION_READINGS:
        fn = sgo.prediction_value_and_grad(
            _predict(problem, model.apply),
            _loss_of_outputs(problem),
            reference_on=lambda out, r=reading: pinn.reading_mask(out, r),
        )
        _, _, scale = fn(params, batch)
        want = np.std(np.concatenate([np.ravel(x) for x in expected[reading]]))
        assert float(scale) == pytest.approx(want, rel=1e-5), reading
    # Helmholtz reads u directly (k^2 u): the values reading sees the interior.
    assert float(jnp.std(cotangent["values"]["interior"])) > 0


@pytest.mark.slow
def test_train_logs_the_reading_in_use_or_every_reading_when_asked():
    problem, model, params = _setup("poisson")
    tx = sgo.stablegrad_adam(1e-3, reference="prediction")
    _, records = _train(problem, model, params, tx, prediction_reference="values")
    assert set(records[-1]["reference_scale"]) == {"values"}
    _, logged = _train(
        problem, model, params, tx, prediction_reference="values", log_readings=True
    )
    assert set(logged[-1]["reference_scale"]) == set(pinn.PREDICTION_READINGS)
    assert all(v > 0 for v in logged[-1]["reference_scale"].values())
    # Logging the other readings changes nothing in the run.
    for record, full in zip(records, logged, strict=True):
        for key in ("loss", "rel_l2"):
            assert record[key] == pytest.approx(full[key], rel=1e-6)
        scale = full["reference_scale"]["values"]
        assert record["reference_scale"]["values"] == pytest.approx(scale, rel=1e-6)
    _, records = _train(problem, model, params, optax.adam(1e-3), log_readings=True)
    assert "reference_scale" not in records[-1]
    with pytest.raises(ValueError, match="reference_scale"):
        _train(problem, model, params, tx)
    with pytest.raises(ValueError, match="prediction_reference"):
        _train(problem, model, params, tx, prediction_reference="u")


class _FixedPoints(pinn.Poisson):
    """Poisson sampling the same points at every step (constant term gradients
    while the parameters stay put)."""

    def sample(self, key, num_interior, num_boundary):
        del key
        return super().sample(jax.random.key(0), num_interior, num_boundary)


def _term_norms(problem, apply_fn, params, batch):
    grads = jax.jacrev(lambda p: problem.losses(pinn.scalar_field(apply_fn, p), batch))(
        params
    )
    return {name: float(optax.tree.norm(g)) for name, g in grads.items()}


@pytest.mark.parametrize(
    "every, momentum",
    [
        pytest.param(100, 0.9, marks=pytest.mark.slow),
        pytest.param(40, 0.9, marks=pytest.mark.slow),
        (40, 0.5),
    ],
)
def test_grad_norm_weights_follow_the_rule_every_k_steps(every, momentum):
    """Frozen params, fixed points: constant targets r, so after n updates a
    weight sits at r + (1 - r) m^n (updates at step 0, K, 2K, ...)."""
    problem = _FixedPoints(k=1)
    model = MLP(depth=2, width=8, input_bounds=(problem.lower, problem.upper))
    params = model.init(jax.random.key(0), jnp.ones((1, 2)))
    norms = _term_norms(problem, model.apply, params, problem.sample(None, 32, 16))
    mean = np.mean(list(norms.values()))
    _, records = _train(
        problem,
        model,
        params,
        optax.set_to_zero(),
        steps=200,
        log_every=100,
        loss_weighting="grad_norm",
        loss_weighting_every=every,
        loss_weighting_momentum=momentum,
    )
    assert [r["step"] for r in records] == [100, 200]
    for record in records:
        updates = -(-record["step"] // every)  # steps 0, K, ... before it
        for name, norm in norms.items():
            target = mean / norm
            want = target + (1 - target) * momentum**updates
            assert record["loss_weights"][name] == pytest.approx(want, rel=1e-4)


def test_grad_norm_lifts_poissons_boundary_term_within_200_steps():
    problem, model, params = _setup("poisson", width=16)
    _, records = _train(
        problem,
        model,
        params,
        optax.adam(1e-3),
        steps=200,
        log_every=100,
        loss_weighting="grad_norm",
    )
    weights = records[-1]["loss_weights"]
    assert set(weights) == {"residual", "boundary"}
    assert weights["boundary"] > weights["residual"]
    assert all(np.isfinite(list(weights.values())))
    # The problem's fixed weights (boundary 1 here) are not used: the logged
    # loss is the sum under the adaptive weights.
    record = records[-1]
    assert record["loss"] != pytest.approx(
        record["residual"] + record["boundary"], rel=1e-3
    )


@pytest.mark.slow
def test_grad_norm_weights_per_seed_in_a_batch():
    problem, model, _ = _setup("poisson")
    x = jnp.ones((1, 2))
    init_keys, batched, data_keys = _seed_batch(model, 2, x)
    settings = dict(
        key=data_keys,
        steps=4,
        log_every=2,
        loss_weighting="grad_norm",
        loss_weighting_every=2,
        loss_weighting_momentum=0.5,
    )
    tx = optax.adam(1e-2)
    _, records = _train(problem, model, batched, tx, **settings)
    weights = records[-1]["loss_weights"]
    assert weights["boundary"][0] != pytest.approx(weights["boundary"][1], rel=1e-3)
    for i in range(2):
        params = model.init(init_keys[i], x)
        _, single = _train(
            problem, model, params, tx, **{**settings, "key": data_keys[i]}
        )
        for name, value in single[-1]["loss_weights"].items():
            assert weights[name][i] == pytest.approx(value, rel=1e-4)
        assert records[-1]["loss"][i] == pytest.approx(single[-1]["loss"], rel=1e-4)


def test_grad_norm_weights_never_turn_nan():
    norms = {
        "residual": jnp.float32(4.0),
        "boundary": jnp.float32(0.0),
        "initial": jnp.float32(jnp.nan),
        "other": jnp.float32(jnp.inf),
    }
    old = {name: jnp.float32(2.0) for name in norms}
    new = pinn.grad_norm_weights(norms, old, momentum=0.9)
    # Only the residual has a usable norm: its target is 1, the others keep 2.
    assert float(new["residual"]) == pytest.approx(0.9 * 2.0 + 0.1 * 1.0)
    assert [float(new[n]) for n in ("boundary", "initial", "other")] == [2.0] * 3
    none_usable = {name: jnp.float32(0.0) for name in norms}
    assert pinn.grad_norm_weights(none_usable, old) == old


@pytest.mark.parametrize(
    "settings, match",
    [
        (dict(loss_weighting="softadapt"), "loss_weighting"),
        (dict(loss_weighting="grad_norm", loss_weighting_every=0), "every"),
        (dict(loss_weighting="grad_norm", loss_weighting_every=2.5), "every"),
        (dict(loss_weighting="grad_norm", loss_weighting_momentum=1.0), "momentum"),
    ],
)
def test_bad_weighting_options_raise(settings, match):
    problem, model, params = _setup()
    with pytest.raises(ValueError, match=match):
        _train(problem, model, params, optax.adam(1e-3), **settings)
