"""StableGrad under JAX SPMD on 8 devices: results equal one device's.

Run by `tests/test_sharding.py` in a subprocess with 8 virtual CPU devices
(XLA_FLAGS=--xla_force_host_platform_device_count=8), so the rest of the suite
keeps its single device. The layouts and helpers are the sharded example's
(`examples/sharded/train.py`): what is tested is what users copy.
"""

from __future__ import annotations

import collections
import functools
import pathlib
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import scripts_imported
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import stablegrad_optax as sgo
from stablegrad_optax import models

EXAMPLE = pathlib.Path(__file__).parents[2] / "examples" / "sharded"
STEPS = 5
LAYOUTS = ("dp", "fsdp", "2d")

if jax.device_count() != 8:
    pytest.exit("tests/sharded needs 8 devices; run it through tests/test_sharding.py")


@pytest.fixture(scope="module")
def example():
    with scripts_imported(EXAMPLE, ["train", "configs.test"], shared=["configs"]) as (
        train,
        config,
    ):
        yield train, config


def mlp_problem():
    model = models.MLP(depth=6, width=64)
    kx, ky, kp = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(kx, (32, 2))
    y = jnp.sin(3 * x[:, :1]) * x[:, 1:]
    params = model.init(kp, x[:1])["params"]

    def loss(p, batch):
        return jnp.mean((model.apply({"params": p}, batch[0]) - batch[1]) ** 2)

    return params, loss, (x, y)


def resnet_problem():
    model = models.ResNet18(num_classes=10, width=8, norm="none", stem="cifar")
    kx, ky, kp = jax.random.split(jax.random.key(1), 3)
    x = jax.random.normal(kx, (16, 16, 16, 3))
    y = jax.random.randint(ky, (16,), 0, 10)
    params = model.init(jax.random.key(2, impl="rbg"), x[:1])["params"]

    def loss(p, batch):
        logits = model.apply({"params": p}, batch[0])
        return optax.softmax_cross_entropy_with_integer_labels(logits, batch[1]).mean()

    return params, loss, (x, y)


PROBLEMS = {"mlp": mlp_problem, "resnet": resnet_problem}
OPTIMIZERS = {
    "adam": lambda: optax.chain(sgo.stablegrad(), optax.adam(1e-3)),
    "sgd": lambda: optax.chain(sgo.stablegrad(), optax.sgd(1e-3, momentum=0.9)),
}
# Under SGD the 8-device result matches one device to rtol 1e-5; Adam divides by
# sqrt(v) + eps, which magnifies reduction-order differences in small entries:
# rtol 1e-4.
RTOL = {"adam": 1e-4, "sgd": 1e-5}


def make_step(tx, loss, batch):
    """The jitted train step (params, opt_state) -> (params, opt_state)."""

    @jax.jit
    def step(params, opt_state):
        grads = jax.grad(loss)(params, batch)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    return step


def run(tx, loss, params, opt_state, batch, steps=STEPS):
    step = make_step(tx, loss, batch)
    for _ in range(steps):
        params, opt_state = step(params, opt_state)
    return params, opt_state


@functools.cache
def one_device_run(problem, optimizer):
    """(params, loss, batch, tx, one device's params after STEPS), shared by
    the layouts so that each problem and optimizer compiles once on one device."""
    params, loss, batch = PROBLEMS[problem]()
    tx = OPTIMIZERS[optimizer]()
    expected, _ = run(tx, loss, params, tx.init(params), batch)
    return params, loss, batch, tx, expected


def same_sharding(a, b) -> bool:
    return a.sharding.is_equivalent_to(b.sharding, a.ndim)


def assert_matches(got, expected, placed_like, rtol, atol):
    """`got` is close to `expected` leaf by leaf, sharded like `placed_like`."""
    leaves = (jax.tree.leaves(t) for t in (got, expected, placed_like))
    for a, b, s in zip(*leaves, strict=True):
        assert same_sharding(a, s)
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


@pytest.mark.parametrize(
    "problem, layout, optimizer",
    [("mlp", layout, "adam") for layout in LAYOUTS]
    + [("mlp", "fsdp", "sgd"), ("mlp", "2d", "sgd")]
    + [("resnet", layout, "adam") for layout in LAYOUTS],
)
def test_training_matches_one_device(example, problem, layout, optimizer):
    train, _ = example
    params, loss, batch, tx, expected = one_device_run(problem, optimizer)

    mesh = train.create_mesh(layout, model_axis=2)
    sharded = jax.device_put(params, train.param_shardings(params, mesh, layout))
    specs = {x.sharding.spec for x in jax.tree.leaves(sharded)}
    assert (specs == {P()}) == (layout == "dp"), specs  # the layout is real
    opt_state = train.create_opt_state(tx, sharded, mesh)
    batch = jax.device_put(batch, train.batch_sharding(mesh))
    got, opt_state = run(tx, loss, sharded, opt_state, batch)

    assert_matches(got, expected, sharded, RTOL[optimizer], atol=1e-6)
    # The optimizer state keeps the parameters' shardings (Adam's or SGD's
    # moments) and StableGrad's per-layer vectors are replicated.
    inner = opt_state[1][0]
    moments = [inner.mu, inner.nu] if optimizer == "adam" else [inner.trace]
    for tree in moments:
        for m, s in zip(jax.tree.leaves(tree), jax.tree.leaves(sharded), strict=True):
            assert same_sharding(m, s)
    assert opt_state[0].stats.sharding.is_fully_replicated
    assert int(opt_state[0].count) == STEPS


@pytest.mark.parametrize("layout", ["fsdp", "2d"])
def test_explicit_sharding_gives_one_device_updates(example, layout):
    """Under explicit axes (jax.make_mesh's default) a reshape or slice of a
    sharded leaf is refused: the statistics stack and reduce instead."""
    train, _ = example
    params, loss, batch = mlp_problem()
    grads = jax.grad(loss)(params, batch)
    tx = optax.chain(sgo.stablegrad(), optax.adam(1e-3))
    expected, _ = tx.update(grads, tx.init(params), params)

    shape = (8,) if layout == "fsdp" else (4, 2)
    names = ("data",) if layout == "fsdp" else ("data", "model")
    mesh = jax.make_mesh(
        shape, names, axis_types=(jax.sharding.AxisType.Explicit,) * len(shape)
    )
    with jax.sharding.set_mesh(mesh):
        shardings = train.param_shardings(params, mesh, layout)
        params = jax.device_put(params, shardings)
        grads = jax.device_put(grads, shardings)
        got, _ = jax.jit(tx.update)(grads, jax.jit(tx.init)(params), params)
    assert_matches(got, expected, params, 1e-5, atol=1e-7)


COLLECTIVE = re.compile(
    r" (all-reduce|all-gather|reduce-scatter|all-to-all|collective-permute)"
    r"(?:-start)?\("
)
CALLED = re.compile(r"(?:to_apply|calls|body|condition)=%?([\w.\-]+)")
BRANCHES = re.compile(
    r"branch_computations=\{([^}]*)\}|(?:true|false)_computation=%?([\w.\-]+)"
)


def collectives(hlo: str) -> tuple[collections.Counter, collections.Counter]:
    """Collective ops of an HLO module: (on every step, inside a conditional).

    Computations reachable from a `conditional`'s branches run only when that
    branch is taken (StableGrad's careful path for out-of-range gradients).
    """
    bodies, name = {}, None
    for line in hlo.splitlines():
        start = re.match(r"^(?:ENTRY )?%?([\w.\-]+) .*\{\s*$", line)
        if start:
            name = start.group(1)
            bodies[name] = ""
        elif name is not None:
            bodies[name] += line + "\n"
    todo = []
    for text in bodies.values():
        for group, single in BRANCHES.findall(text):
            todo += [x.strip().lstrip("%") for x in group.split(",") if x.strip()]
            todo += [single] if single else []
    conditional = set()
    while todo:
        name = todo.pop()
        if name not in conditional:
            conditional.add(name)
            todo.extend(CALLED.findall(bodies.get(name, "")))
    always, inside = collections.Counter(), collections.Counter()
    for name, text in bodies.items():
        (inside if name in conditional else always).update(COLLECTIVE.findall(text))
    return always, inside


def test_fsdp_statistics_add_one_all_reduce(example):
    train, _ = example
    params, loss, batch = mlp_problem()
    mesh = train.create_mesh("fsdp")
    params = jax.device_put(params, train.param_shardings(params, mesh, "fsdp"))
    batch = jax.device_put(batch, train.batch_sharding(mesh))

    def compiled(tx):
        opt_state = train.create_opt_state(tx, params, mesh)
        step = make_step(tx, loss, batch)
        return step.lower(params, opt_state).compile().as_text()

    adam, _ = collectives(compiled(optax.adam(1e-3)))
    both, careful = collectives(
        compiled(optax.chain(sgo.stablegrad(), optax.adam(1e-3)))
    )
    added = both - adam
    # Every layer's sum and sum of squares travel in one all-reduce; nothing is
    # gathered. (The careful path, taken only for gradients outside float32's
    # safe range, has its own few all-reduces.)
    assert added == collections.Counter({"all-reduce": 1}), (adam, both)
    assert careful["all-gather"] == 0 and careful["all-reduce"] >= 1, careful


def test_checkpoint_resume_gives_bit_identical_updates(example, tmp_path):
    train, _ = example
    params, loss, batch = mlp_problem()
    tx = optax.chain(sgo.stablegrad(ema_decay=0.9), optax.adam(1e-3))
    mesh = train.create_mesh("fsdp")
    params = jax.device_put(params, train.param_shardings(params, mesh, "fsdp"))
    batch = jax.device_put(batch, train.batch_sharding(mesh))
    params, opt_state = run(
        tx, loss, params, train.create_opt_state(tx, params, mesh), batch, 3
    )
    manager = train.checkpoint_manager(tmp_path)
    train.save(manager, 3, params, opt_state)
    manager.wait_until_finished()

    step = make_step(tx, loss, batch)

    def next_three(params, opt_state):
        out = []
        for _ in range(3):
            params, opt_state = step(params, opt_state)
            out.append((params, opt_state))
        return out

    uninterrupted = next_three(params, opt_state)
    blank_params = jax.tree.map(jnp.zeros_like, params)
    blank_state = train.create_opt_state(tx, blank_params, mesh)
    restored = train.restore(manager, 3, blank_params, blank_state)
    for a, b in zip(
        jax.tree.leaves(restored), jax.tree.leaves((params, opt_state)), strict=True
    ):
        assert same_sharding(a, b)
        assert a.dtype == b.dtype and np.array_equal(a, b)
    for got, expected in zip(next_three(*restored), uninterrupted, strict=True):
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(expected), strict=True):
            assert np.array_equal(a, b)


def test_example_runs_on_a_2d_mesh_and_resumes(example, tmp_path):
    train, config = example
    config = config.get_config()
    config = config.__class__(**{**config.__dict__, "layout": "2d"})
    logs = []
    whole = train.train_and_evaluate(config, tmp_path / "whole", logs.append)
    assert whole["mesh"] == {"data": 4, "model": 2}
    assert np.isfinite(whole["rel_l2"]) and whole["start_step"] == 0
    assert [r["step"] for r in whole["log"]] == [3, 6]
    first = config.__class__(**{**config.__dict__, "steps": 3})
    train.train_and_evaluate(first, tmp_path / "split", logs.append)
    resumed = train.train_and_evaluate(config, tmp_path / "split", logs.append)
    assert resumed["start_step"] == 3
    assert "resumed from the checkpoint of step 3" in logs
    for a, b in zip(
        jax.tree.leaves(resumed["params"]),
        jax.tree.leaves(whole["params"]),
        strict=True,
    ):
        assert np.array_equal(a, b)


def test_a_sharding_that_does_not_divide_is_jaxs_own_error(example):
    train, _ = example
    mesh = train.create_mesh("fsdp")
    with pytest.raises(ValueError, match="divide"):
        jax.device_put(jnp.ones((50, 3)), NamedSharding(mesh, P("data")))
    with pytest.raises(ValueError, match="model_axis"):
        train.create_mesh("2d", model_axis=3)
    # The layouts never ask for that: width 50 has no axis 8 divides.
    assert train.leaf_spec((50, 50), 8, "data") == P()
    assert train.leaf_spec((50, 64), 8, "data") == P(None, "data")
