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


def test_records_per_chunk_with_a_partial_last_chunk():
    problem, model, params = _setup("burgers")
    seen = []
    _, records = pinn.train(
        problem,
        model.apply,
        params,
        sgo.stablegrad_adam(1e-3),
        key=jax.random.key(1),
        steps=6,
        log_every=4,
        num_interior=32,
        num_boundary=16,
        eval_resolution=11,
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
    _, records = pinn.train(
        problem,
        model.apply,
        params,
        optax.chain(sgo.stablegrad(), optax.adam(1e-2)),
        key=jax.random.key(1),
        steps=300,
        log_every=100,
        num_interior=64,
        num_boundary=64,
        eval_resolution=21,
    )
    assert records[-1]["loss"] < 0.1 * records[0]["loss"]
    assert records[-1]["rel_l2"] < records[0]["rel_l2"]


def test_divergence_stops_the_run():
    problem, model, params = _setup("poisson")
    _, records = pinn.train(
        problem,
        model.apply,
        params,
        optax.sgd(1e12),
        key=jax.random.key(1),
        steps=50,
        log_every=5,
        num_interior=16,
        num_boundary=16,
        eval_resolution=5,
    )
    assert records[-1]["diverged"] and len(records) < 10


def test_bad_step_counts_raise():
    problem, model, params = _setup()
    with pytest.raises(ValueError, match="steps"):
        pinn.train(
            problem,
            model.apply,
            params,
            optax.adam(1e-3),
            key=jax.random.key(0),
            steps=0,
        )


def test_seeds_by_vmap_match_single_runs():
    problem, model, _ = _setup("poisson")
    init_keys = jax.random.split(jax.random.key(0), 3)
    data_keys = jax.random.split(jax.random.key(1), 3)
    x = jnp.ones((1, 2))
    batched = jax.vmap(model.init, in_axes=(0, None))(init_keys, x)
    tx = sgo.stablegrad_adam(1e-2)
    kwargs = dict(
        steps=8, log_every=4, num_interior=32, num_boundary=16, eval_resolution=9
    )
    _, records = pinn.train_seeds(
        problem, model.apply, batched, tx, keys=data_keys, **kwargs
    )
    assert len(records[-1]["rel_l2"]) == 3 and len(records[-1]["imbalance"]) == 3
    _, single = pinn.train(
        problem,
        model.apply,
        model.init(init_keys[1], x),
        tx,
        key=data_keys[1],
        **kwargs,
    )
    assert records[-1]["loss"][1] == pytest.approx(single[-1]["loss"], rel=1e-4)
    assert records[-1]["rel_l2"][1] == pytest.approx(single[-1]["rel_l2"], rel=1e-4)
    assert records[-1]["diverged"] == [False, False, False]


def test_runs_with_their_own_learning_rates_match_single_runs():
    """A stacked `opt_state` gives each vmapped run its own hyperparameters."""
    problem, model, params = _setup("poisson")
    key = jax.random.key(1)
    kwargs = dict(
        steps=6, log_every=3, num_interior=32, num_boundary=16, eval_resolution=9
    )
    tx = optax.inject_hyperparams(sgo.stablegrad_adam)(learning_rate=1.0)
    learning_rates = jnp.array([1e-3, 3e-2])
    stacked = jax.tree.map(lambda x: jnp.stack([x, x]), params)
    opt_state = jax.vmap(tx.init)(stacked)
    opt_state.hyperparams["learning_rate"] = learning_rates
    _, records = pinn.train_seeds(
        problem,
        model.apply,
        stacked,
        tx,
        keys=jnp.stack([key, key]),
        opt_state=opt_state,
        **kwargs,
    )
    for i, lr in enumerate([1e-3, 3e-2]):
        _, single = pinn.train(
            problem, model.apply, params, sgo.stablegrad_adam(lr), key=key, **kwargs
        )
        assert records[-1]["loss"][i] == pytest.approx(single[-1]["loss"], rel=1e-4)
    assert records[-1]["loss"][0] != pytest.approx(records[-1]["loss"][1], rel=1e-2)


def test_update_args_reach_the_optimizer_at_every_step():
    """A reference_scale from update_args acts like the same constant reference."""
    problem, model, params = _setup("poisson")
    kwargs = dict(
        key=jax.random.key(2),
        steps=4,
        log_every=2,
        num_interior=32,
        num_boundary=16,
        eval_resolution=9,
    )
    given = optax.chain(sgo.stablegrad("given"), optax.sgd(1e-3))
    _, records = pinn.train(
        problem,
        model.apply,
        params,
        given,
        update_args=lambda p, batch: {"reference_scale": 0.5},
        **kwargs,
    )
    constant = optax.chain(sgo.stablegrad(0.5), optax.sgd(1e-3))
    _, expected = pinn.train(problem, model.apply, params, constant, **kwargs)
    assert records[-1]["loss"] == pytest.approx(expected[-1]["loss"], rel=1e-5)
    assert records[-1]["rel_l2"] == pytest.approx(expected[-1]["rel_l2"], rel=1e-5)
    with pytest.raises(ValueError, match="reference_scale"):
        pinn.train(problem, model.apply, params, given, **kwargs)
