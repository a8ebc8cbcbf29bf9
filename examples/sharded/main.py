"""StableGrad + Adam on a mesh of every visible device: dp, FSDP or a 2-D mesh.

Trains a deep tanh PINN (2-D Poisson) with parameters, optimizer state and
collocation points sharded by JAX's SPMD, checkpointing with orbax and resuming
from the latest checkpoint in the work directory.

Usage::

  python examples/sharded/main.py                       # all local devices
  XLA_FLAGS=--xla_force_host_platform_device_count=8 JAX_PLATFORMS=cpu \\
    python examples/sharded/main.py --config examples/sharded/configs/test.py
  python examples/sharded/main.py --layout 2d --model-axis 2 --steps 2000

Several hosts: run the same command on every host with ``--multihost``;
`jax.distributed.initialize()` then finds the cluster (SLURM, Open MPI, TPU
pods and GKE set it up; elsewhere set JAX_COORDINATOR_ADDRESS,
JAX_NUM_PROCESSES and JAX_PROCESS_ID), the mesh spans every host's devices, and
the work directory must be on a file system all hosts share.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import sys
from collections.abc import Sequence

import jax

HERE = pathlib.Path(__file__).parent
sys.path.insert(0, str(HERE.parent))  # examples/common.py

import train  # noqa: E402
from common import config_and_overrides, positive  # noqa: E402
from configs.default import LAYOUTS  # noqa: E402


def parse_args(argv: Sequence[str] | None = None):
    """(config with the flags applied, work directory, multihost flag)."""
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
    args = parser.parse_args(argv)
    fields = ("layout", "model_axis", "depth", "width", "steps")
    config, overrides = config_and_overrides(parser, args, fields)
    if args.no_checkpoint:
        overrides["checkpoint"] = False
    return dataclasses.replace(config, **overrides), args.workdir, args.multihost


def main(argv: Sequence[str] | None = None) -> dict:
    config, workdir, multihost = parse_args(argv)
    if multihost:
        jax.distributed.initialize()
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
