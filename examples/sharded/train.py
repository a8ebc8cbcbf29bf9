"""Sharded training of a deep PINN with StableGrad + Adam, on JAX's own SPMD.

Functions in reading order: the mesh and the shardings of each layout, the
model and the optimizer (the one place a StableGrad chain is built), the train
step, checkpoints, then the loop.

No communication is written here. Parameters, optimizer state and the
collocation points carry `NamedSharding`s and `jax.jit` lets XLA insert the
collectives: StableGrad's per-layer statistics are sums over each layer that
XLA computes shard by shard and combines in one all-reduce of the per-layer
sums, so the factors are global and the result matches one device.
"""

from __future__ import annotations

import functools
import pathlib
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

import stablegrad_optax as sgo
from stablegrad_optax import init, models, pinn

# Which mesh axis each layout shards the parameters over (None: replicated).
PARAMETER_AXIS = {"dp": None, "fsdp": "data", "2d": "model"}


def create_mesh(layout: str, model_axis: int = 2, devices=None) -> Mesh:
    """A 1-D ("data",) mesh, or for "2d" a ("data", "model") mesh."""
    if layout not in PARAMETER_AXIS:
        raise ValueError(
            f"layout must be one of {sorted(PARAMETER_AXIS)}, got {layout!r}"
        )
    devices = np.asarray(jax.devices() if devices is None else devices)
    if layout != "2d":
        return Mesh(devices, ("data",))
    if model_axis < 1 or devices.size % model_axis:
        raise ValueError(
            f"model_axis must divide the {devices.size} devices, got {model_axis}."
        )
    return Mesh(devices.reshape(-1, model_axis), ("data", "model"))


def leaf_spec(shape: tuple[int, ...], size: int, axis: str) -> P:
    """`axis` on the largest dimension that `size` divides; replicated if none.

    Width 50 on 8 devices: a (50, 50) kernel has no such dimension and stays
    whole on every device; width 64 shards every hidden kernel.
    """
    for dim in sorted(range(len(shape)), key=lambda d: -shape[d]):
        if shape[dim] >= size and shape[dim] % size == 0:
            return P(*(axis if d == dim else None for d in range(len(shape))))
    return P()


def param_shardings(params: Any, mesh: Mesh, layout: str) -> Any:
    """The `NamedSharding` of every parameter leaf under `layout`."""
    axis = PARAMETER_AXIS[layout]
    if axis is None:
        return jax.tree.map(lambda _: NamedSharding(mesh, P()), params)
    return jax.tree.map(
        lambda x: NamedSharding(mesh, leaf_spec(np.shape(x), mesh.shape[axis], axis)),
        params,
    )


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Examples (collocation points) split over the "data" axis."""
    return NamedSharding(mesh, P("data"))


def create_model(config) -> tuple[pinn.Problem, models.MLP]:
    problem = pinn.get_problem("poisson", boundary_weight=100.0)
    kernel_init, bias_init = init.get_initializers(config.init)
    model = models.MLP(
        depth=config.depth,
        width=config.width,
        input_bounds=(problem.lower, problem.upper),
        kernel_init=kernel_init,
        bias_init=bias_init,
    )
    return problem, model


def create_optimizer(config) -> optax.GradientTransformation:
    return optax.chain(sgo.stablegrad(), optax.adam(config.learning_rate))


def create_params(model, mesh: Mesh, layout: str, seed: int) -> Any:
    """Initial parameters, created directly in their shards (never whole)."""
    sample = jnp.ones((1, 2))
    init_fn = lambda key: model.init(key, sample)["params"]
    shapes = jax.eval_shape(init_fn, jax.random.key(seed))
    shardings = param_shardings(shapes, mesh, layout)
    return jax.jit(init_fn, out_shardings=shardings)(jax.random.key(seed))


def create_opt_state(tx, params, mesh: Mesh) -> Any:
    """The optimizer state in the parameters' shardings (scalars replicated).

    `optax.tree_map_params` finds the parameter-shaped parts of the state
    (Adam's moments); StableGrad's per-layer vectors are replicated. A plain
    `jax.jit(tx.init)` would leave every leaf on one device: zeros do not
    depend on the parameters' values, so nothing tells XLA where they go.
    """
    shardings = optax.tree_map_params(
        tx,
        lambda _, sharding: sharding,
        jax.eval_shape(tx.init, params),
        jax.tree.map(lambda x: x.sharding, params),
        transform_non_params=lambda _: NamedSharding(mesh, P()),
        is_leaf=lambda x: isinstance(x, NamedSharding),
    )
    return jax.jit(tx.init, out_shardings=shardings)(params)


def make_train_step(problem, model, tx, config, mesh: Mesh):
    """A jitted step (params, opt_state, key) -> (params, opt_state, loss)."""

    def apply_fn(params, x):
        return model.apply({"params": params}, x)

    def step(params, opt_state, key):
        batch = problem.sample(key, config.num_interior, config.num_boundary)
        # Each device draws and differentiates at its own share of the points.
        batch = jax.lax.with_sharding_constraint(batch, batch_sharding(mesh))

        def loss_fn(p):
            return problem.loss(pinn.scalar_field(apply_fn, p), batch)

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    # Donated buffers are reused in place; the outputs keep the inputs' shardings.
    return jax.jit(step, donate_argnums=(0, 1))


def checkpoint_manager(workdir: str | pathlib.Path) -> ocp.CheckpointManager:
    path = pathlib.Path(workdir).absolute() / "checkpoints"
    options = ocp.CheckpointManagerOptions(max_to_keep=2)
    return ocp.CheckpointManager(path, options=options)


def save(manager: ocp.CheckpointManager, step: int, params, opt_state) -> None:
    """Writes the sharded arrays (each host its own shards)."""
    target = {"params": params, "opt_state": opt_state}
    manager.save(step, args=ocp.args.StandardSave(target))


def restore(manager: ocp.CheckpointManager, step: int, params, opt_state):
    """(params, opt_state) of `step`, in the shardings of the given ones."""
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
        {"params": params, "opt_state": opt_state},
    )
    restored = manager.restore(step, args=ocp.args.StandardRestore(abstract))
    return restored["params"], restored["opt_state"]


def layer_log(params, opt_state) -> dict[str, Any]:
    """The per-layer gradient std StableGrad saw at the last step, by layer."""
    state = opt_state[0]  # the StableGradState, first in the chain
    stats = np.asarray(state.stats)
    names = sgo.layer_names(params)
    return {
        "reference": float(state.reference),
        "smallest": (names[int(stats.argmin())], float(stats.min())),
        "largest": (names[int(stats.argmax())], float(stats.max())),
    }


def train_and_evaluate(config, workdir: str | pathlib.Path, log=print) -> dict:
    """Trains on a mesh of all devices, resuming from a checkpoint if there is one.

    Returns the run's results, with the final `params` and `opt_state`.
    """
    mesh = create_mesh(config.layout, config.model_axis)
    problem, model = create_model(config)
    tx = create_optimizer(config)
    params = create_params(model, mesh, config.layout, config.seed)
    opt_state = create_opt_state(tx, params, mesh)
    manager = checkpoint_manager(workdir) if config.checkpoint else None
    start = 0
    if manager is not None and manager.latest_step() is not None:
        start = manager.latest_step()
        params, opt_state = restore(manager, start, params, opt_state)
        log(f"resumed from the checkpoint of step {start}")
    step_fn = make_train_step(problem, model, tx, config, mesh)
    # One key per step, whatever step a run starts from: a resumed run sees the
    # same collocation points as an uninterrupted one.
    base_key = jax.random.key(config.seed + 1)
    records, compiled_at = [], None
    for step in range(start, config.steps):
        key = jax.random.fold_in(base_key, step)
        params, opt_state, loss = step_fn(params, opt_state, key)
        done = step + 1
        if done % config.log_every and done != config.steps:
            continue
        record = {"step": done, "loss": float(loss), **layer_log(params, opt_state)}
        if compiled_at is None:  # the first sync includes compilation
            compiled_at = (time.perf_counter(), done)
        records.append(record)
        log(
            f"step {done}: loss {record['loss']:.4g}, per-layer grad std "
            f"{record['smallest'][1]:.3g} ({record['smallest'][0]}) to "
            f"{record['largest'][1]:.3g} ({record['largest'][0]})"
        )
        if manager is not None:
            save(manager, done, params, opt_state)
    if manager is not None:
        manager.wait_until_finished()
    seconds_per_step = None
    if compiled_at is not None and records[-1]["step"] > compiled_at[1]:
        elapsed = time.perf_counter() - compiled_at[0]
        seconds_per_step = elapsed / (records[-1]["step"] - compiled_at[1])
    # Every process evaluates on its own whole copy of the parameters.
    whole = multihost_utils.process_allgather(params, tiled=True)
    apply = jax.jit(lambda p, x: model.apply({"params": p}, x)[:, 0])
    predict = functools.partial(apply, whole)
    return {
        "layout": config.layout,
        "mesh": dict(mesh.shape),
        "devices": f"{jax.device_count()} x {jax.devices()[0].platform}",
        "processes": jax.process_count(),
        "start_step": start,
        "steps": config.steps,
        "seconds_per_step": seconds_per_step,
        "rel_l2": float(problem.error(predict, config.eval_resolution)),
        "log": records,
        "params": params,
        "opt_state": opt_state,
    }
