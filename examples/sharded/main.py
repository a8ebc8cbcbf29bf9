"""StableGrad + Adam on a mesh of every visible device: dp, FSDP or a 2-D mesh.

Trains a deep tanh PINN (2-D Poisson) with parameters, optimizer state and
collocation points sharded by JAX's SPMD, checkpointing with orbax and resuming
from the latest checkpoint in the work directory.

Usage::

  python examples/sharded/main.py                       # all local devices
  XLA_FLAGS=--xla_force_host_platform_device_count=8 JAX_PLATFORMS=cpu \\
    python examples/sharded/main.py --config examples/sharded/configs/test.py
  python examples/sharded/main.py --layout 2d --model-axis 2 --steps 2000

Several hosts: run the same command on every host with ``--multihost``. On a
cluster JAX detects (SLURM, Open MPI, TPU pods, GKE) nothing else is needed;
elsewhere set JAX_COORDINATOR_ADDRESS (host:port of process 0),
JAX_NUM_PROCESSES and JAX_PROCESS_ID in every process. The mesh spans every
process's devices, and the work directory must be on a file system all
processes share. Two processes on one machine::

  for i in 0 1; do
    JAX_COORDINATOR_ADDRESS=127.0.0.1:12345 JAX_NUM_PROCESSES=2 JAX_PROCESS_ID=$i \\
    XLA_FLAGS=--xla_force_host_platform_device_count=2 JAX_PLATFORMS=cpu \\
      python examples/sharded/main.py --multihost --workdir sharded_out &
  done; wait
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import sys
import threading
from collections.abc import Sequence

import jax

HERE = pathlib.Path(__file__).parent
sys.path.insert(0, str(HERE.parent))  # examples/common.py

import train  # noqa: E402
from common import config_and_overrides, positive  # noqa: E402
from configs.default import LAYOUTS  # noqa: E402

# What --multihost reads, where set, and the arguments of jax.distributed.initialize.
DISTRIBUTED_VARIABLES = {
    "JAX_COORDINATOR_ADDRESS": ("coordinator_address", str),
    "JAX_NUM_PROCESSES": ("num_processes", int),
    "JAX_PROCESS_ID": ("process_id", int),
}


def initialize_distributed(timeout_s: int) -> None:
    """`jax.distributed.initialize`, from the three variables where they are set.

    Outside a cluster it detects (SLURM, Open MPI, TPU pods, GKE), JAX reads
    only the coordinator's address from the environment; this passes all three,
    and JAX's cluster detection fills what is not set. Any failure (a malformed
    number, no cluster and not all three set, a coordinator or a process not
    connected within `timeout_s` seconds) exits with one line naming it.
    """
    kwargs = {}
    for name, (argument, kind) in DISTRIBUTED_VARIABLES.items():
        if value := os.environ.get(name):
            try:
                kwargs[argument] = kind(value)
            except ValueError:
                raise SystemExit(
                    f"error: {name} must be an integer, got {value!r}"
                ) from None
    # JAX aborts the process when its own timeout passes; a watchdog exits
    # first, with a line that says what was waited for.
    where = kwargs.get("coordinator_address", "the cluster's coordinator")
    watchdog = threading.Timer(
        timeout_s,
        _exit,
        [
            f"error: --multihost: not every process reached the coordinator at "
            f"{where} within {timeout_s} s (--multihost-timeout)"
        ],
    )
    watchdog.start()
    try:
        jax.distributed.initialize(**kwargs, initialization_timeout=timeout_s + 30)
    except Exception as error:  # ValueError, RuntimeError or JaxRuntimeError
        raise SystemExit(
            f"error: jax.distributed.initialize failed: {error} (set "
            f"{', '.join(DISTRIBUTED_VARIABLES)}, or run on a cluster JAX detects)"
        ) from None
    finally:
        watchdog.cancel()


def _exit(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
    os._exit(1)


def parse_args(argv: Sequence[str] | None = None):
    """(config with the flags applied, work directory, multihost timeout in
    seconds or None without --multihost)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(HERE / "configs" / "default.py"))
    parser.add_argument("--workdir", default="sharded_out")
    parser.add_argument("--layout", choices=LAYOUTS)
    parser.add_argument("--model-axis", type=positive(int), dest="model_axis")
    parser.add_argument("--depth", type=positive(int))
    parser.add_argument("--width", type=positive(int))
    parser.add_argument("--steps", type=positive(int))
    parser.add_argument("--no-checkpoint", action="store_true")
    parser.add_argument(
        "--multihost",
        action="store_true",
        help="call jax.distributed.initialize() first (one process per host)",
    )
    parser.add_argument(
        "--multihost-timeout",
        type=positive(int),
        default=300,
        help="seconds to wait for the coordinator and every process (default 300)",
    )
    args = parser.parse_args(argv)
    fields = ("layout", "model_axis", "depth", "width", "steps")
    config, overrides = config_and_overrides(parser, args, fields)
    if args.no_checkpoint:
        overrides["checkpoint"] = False
    timeout = args.multihost_timeout if args.multihost else None
    return dataclasses.replace(config, **overrides), args.workdir, timeout


def main(argv: Sequence[str] | None = None) -> dict:
    config, workdir, multihost_timeout = parse_args(argv)
    if multihost_timeout is not None:
        initialize_distributed(multihost_timeout)
    print(
        f"process {jax.process_index()} of {jax.process_count()}; "
        f"{jax.device_count()} devices: {jax.devices()[0].device_kind}",
        flush=True,
    )
    try:
        results = train.train_and_evaluate(config, workdir)
    except ValueError as error:  # a layout that the devices cannot form
        raise SystemExit(f"error: {error}") from None
    summary = {k: v for k, v in results.items() if k not in ("params", "opt_state")}
    if jax.process_index() == 0:
        path = pathlib.Path(workdir) / "results.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(summary, indent=2) + "\n")
        print(
            f"{summary['layout']} on mesh {summary['mesh']}: rel-L2 "
            f"{summary['rel_l2']:.4g} after {summary['steps']} steps "
            f"(resumed at {summary['start_step']}); results in {path}"
        )
    return results


if __name__ == "__main__":
    main()
