"""The optax-style property suite, for stablegrad chained with adam and sgd."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import PROBLEMS

import stablegrad_optax as sgo

# name -> (factory of a transformation given a learning rate, learning rate)
OPTIMIZERS = {
    "stablegrad+adam": (
        lambda lr: optax.chain(sgo.stablegrad("geometric_mean"), optax.adam(lr)),
        3e-2,
    ),
    "stablegrad+sgd": (
        lambda lr: optax.chain(sgo.stablegrad("mean"), optax.sgd(lr, momentum=0.9)),
        1e-3,
    ),
    "stablegrad_adam": (
        lambda lr: sgo.stablegrad_adam(lr, reference="median", ema_decay=0.5),
        3e-2,
    ),
    "stablegrad_adamw": (
        lambda lr: sgo.stablegrad_adamw(lr, weight_decay=0.0, reference="max"),
        3e-2,
    ),
    "stablegrad_sgd": (
        lambda lr: sgo.stablegrad_sgd(
            lr, momentum=0.9, reference="mean", max_scale=10.0
        ),
        1e-3,
    ),
    "adamp": (lambda lr: sgo.adamp(lr, weight_decay=1e-4), 3e-2),
    "sgdp": (lambda lr: sgo.sgdp(lr, momentum=0.9, nesterov=True), 1e-3),
}


def _matrix_problem(name):
    """Optimizer `name` at its learning rate, and the matrix problem."""
    make, lr = OPTIMIZERS[name]
    params, loss, _ = PROBLEMS["matrix"]()
    return make(lr), params, loss


def _run(tx, params, loss, steps):
    state = tx.init(params)

    def step(carry, _):
        params, state = carry
        grads = jax.grad(loss)(params)
        updates, state = tx.update(grads, state, params)
        return (optax.apply_updates(params, updates), state), None

    (params, state), _ = jax.jit(lambda c: jax.lax.scan(step, c, length=steps))(
        (params, state)
    )
    return params, state


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_converges(name, problem):
    make, lr = OPTIMIZERS[name]
    params, loss, solution = PROBLEMS[problem]()
    steps = 20_000 if problem == "rosenbrock" else 3_000
    final, _ = _run(make(lr), params, loss, steps)
    chex.assert_trees_all_close(final, solution, atol=1e-2, rtol=1e-2)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_no_recompilation_on_second_update(name):
    tx, params, loss = _matrix_problem(name)
    state = tx.init(params)

    traces = []

    @jax.jit
    def update(grads, state, params):
        traces.append(1)
        return tx.update(grads, state, params)

    for _ in range(3):
        updates, state = update(jax.grad(loss)(params), state, params)
        params = optax.apply_updates(params, updates)
    assert len(traces) == 1


def _stablegrad_kwargs():
    return dict(reference="geometric_mean", eps=1e-12, max_scale=8.0, ema_decay=0.3)


@pytest.mark.parametrize(
    "plain,injected",
    [
        (
            lambda: sgo.stablegrad(**_stablegrad_kwargs()),
            lambda: optax.inject_hyperparams(sgo.stablegrad)(**_stablegrad_kwargs()),
        ),
        (
            # float32 hyperparameters, as inject_hyperparams makes them (optax's
            # adam rounds 1 - b2 differently for a Python float).
            lambda: sgo.stablegrad_adam(
                jnp.float32(1e-2),
                b1=jnp.float32(0.9),
                b2=jnp.float32(0.999),
                reference="mean",
            ),
            lambda: optax.inject_hyperparams(sgo.stablegrad_adam)(
                learning_rate=1e-2, reference="mean"
            ),
        ),
        (
            lambda: sgo.stablegrad_sgd(1e-2, momentum=0.9, reference=0.5),
            lambda: optax.inject_hyperparams(sgo.stablegrad_sgd)(
                learning_rate=1e-2, momentum=0.9, reference=0.5
            ),
        ),
    ],
)
def test_inject_hyperparams_gives_equal_updates_and_state(plain, injected):
    params, loss, _ = PROBLEMS["matrix"]()
    a, b = plain(), injected()
    sa, sb = a.init(params), b.init(params)
    pa = pb = params
    for _ in range(4):
        ua, sa = jax.jit(a.update)(jax.grad(loss)(pa), sa, pa)
        ub, sb = jax.jit(b.update)(jax.grad(loss)(pb), sb, pb)
        chex.assert_trees_all_close(ua, ub, rtol=1e-6)
        pa, pb = optax.apply_updates(pa, ua), optax.apply_updates(pb, ub)
    chex.assert_trees_all_close(sa, sb.inner_state, rtol=1e-6)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float32])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_dtypes_preserved(name, dtype):
    tx, params, loss = _matrix_problem(name)
    params = jax.tree.map(lambda p: p.astype(dtype), params)
    state = tx.init(params)
    grads = jax.grad(lambda p: loss(jax.tree.map(lambda x: x.astype(jnp.float32), p)))(
        params
    )
    updates, new_state = jax.jit(tx.update)(grads, state, params)
    for u in jax.tree.leaves(updates):
        assert u.dtype == dtype
    chex.assert_trees_all_equal_dtypes(state, new_state)
    chex.assert_trees_all_equal_shapes(state, new_state)


def test_schedule_as_learning_rate():
    params, loss, solution = PROBLEMS["parabola"]()
    schedule = optax.linear_schedule(3e-2, 1e-3, 3000)
    final, _ = _run(sgo.stablegrad_adam(schedule), params, loss, 3000)
    chex.assert_trees_all_close(final, solution, atol=1e-2)


def test_multisteps_accumulates_then_updates():
    params, loss, _ = PROBLEMS["matrix"]()
    tx = optax.MultiSteps(sgo.stablegrad_sgd(0.1, reference="mean"), every_k_schedule=3)
    state = tx.init(params)
    update = jax.jit(tx.update)
    for step in range(6):
        updates, state = update(jax.grad(loss)(params), state, params)
        norm = float(optax.tree.norm(updates))
        if step % 3 < 2:
            assert norm == 0.0
        else:
            assert norm > 0.0
        params = optax.apply_updates(params, updates)


def test_masked_with_masked_node_leaves():
    params, loss, _ = PROBLEMS["matrix"]()
    params = {**params, "c": {"w": jnp.ones((2, 2))}}
    mask = {"a": True, "b": True, "c": False}
    seen = {}

    def spy_update(updates, state, params=None):
        seen["updates"] = updates
        return updates, state

    spy = optax.GradientTransformation(lambda p: optax.EmptyState(), spy_update)
    tx = optax.chain(
        optax.masked(optax.chain(spy, sgo.stablegrad(1.0)), mask), optax.sgd(1.0)
    )
    state = tx.init(params)
    grads = jax.tree.map(lambda p: p * 3.0 + 1.0, params)
    grads["a"]["w"] = grads["a"]["w"] * jnp.arange(1.0, 7.0).reshape(2, 3)
    updates, _ = jax.jit(tx.update)(grads, state, params)
    assert isinstance(seen["updates"]["c"], optax.MaskedNode)
    np.testing.assert_allclose(np.std(-np.asarray(updates["a"]["w"])), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(updates["c"]["w"], -grads["c"]["w"])


def test_apply_if_finite_skips_a_non_finite_step():
    params, loss, _ = PROBLEMS["matrix"]()
    for tx in (
        optax.apply_if_finite(sgo.stablegrad_adam(1e-2, reference="mean"), 3),
        optax.chain(sgo.stablegrad("mean"), optax.apply_if_finite(optax.adam(1e-2), 3)),
    ):
        state = tx.init(params)
        update = jax.jit(tx.update)
        grads = jax.grad(loss)(params)
        bad = {**grads, "a": {"w": grads["a"]["w"].at[0, 0].set(jnp.nan)}}
        updates, state = update(bad, state, params)
        for u in jax.tree.leaves(updates):
            assert np.all(np.isfinite(u))
            np.testing.assert_array_equal(u, 0.0)
        updates, state = update(grads, state, params)
        assert float(optax.tree.norm(updates)) > 0
        for u in jax.tree.leaves(updates):
            assert np.all(np.isfinite(u))


def test_none_leaves_pass_through():
    params = {
        "a": {"w": jnp.ones((2, 3)), "b": None},
        "skip": None,
        "o": {"w": jnp.ones((3, 1))},
    }
    grads = {
        "a": {"w": jnp.arange(6.0).reshape(2, 3), "b": None},
        "skip": None,
        "o": {"w": jnp.array([[1.0], [2.0], [4.0]])},
    }
    tx = sgo.stablegrad_sgd(1.0, output_layer="o")
    updates, _ = jax.jit(tx.update)(grads, tx.init(params), params)
    assert updates["skip"] is None and updates["a"]["b"] is None
    np.testing.assert_allclose(
        np.std(np.asarray(updates["a"]["w"])), np.std([1.0, 2.0, 4.0]), rtol=1e-5
    )


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_state_stable_under_lax_cond(name):
    tx, params, loss = _matrix_problem(name)
    state = tx.init(params)
    grads = jax.grad(loss)(params)

    @jax.jit
    def maybe_update(flag, state):
        return jax.lax.cond(
            flag, lambda s: tx.update(grads, s, params)[1], lambda s: s, state
        )

    stepped = maybe_update(True, state)
    kept = maybe_update(False, stepped)
    chex.assert_trees_all_equal_structs(state, stepped)
    chex.assert_trees_all_equal(stepped, kept)


def test_multi_transform_and_vmap_over_seeds():
    params, loss, _ = PROBLEMS["matrix"]()
    labels = {"a": "sg", "b": "plain"}
    tx = optax.multi_transform(
        {"sg": sgo.stablegrad_sgd(1e-2, reference=1.0), "plain": optax.sgd(1e-2)},
        labels,
    )
    state = tx.init(params)
    updates, _ = tx.update(jax.grad(loss)(params), state, params)
    np.testing.assert_allclose(
        np.std(-np.asarray(updates["a"]["w"]) / 1e-2), 1.0, rtol=1e-5
    )

    batched = jax.tree.map(lambda p: jnp.stack([p, p + 1.0]), params)
    tx = sgo.stablegrad_sgd(1e-2, reference="mean")

    def one(p):
        s = tx.init(p)
        return tx.update(jax.grad(loss)(p), s, p)[0]

    out = jax.jit(jax.vmap(one))(batched)
    single = one(jax.tree.map(lambda p: p[1], batched))
    chex.assert_trees_all_close(jax.tree.map(lambda u: u[1], out), single, rtol=1e-6)
