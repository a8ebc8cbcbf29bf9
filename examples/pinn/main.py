"""Deep PINN: the paper's StableGrad beside Adam and its honest peers.

Trains one deep tanh PINN (default: 2-D Poisson, 24 hidden layers of 50,
activation-aware init) with five optimizers (Adam, the paper's StableGrad +
Adam, AGC + Adam, Adam with a decaying learning rate, StableGrad with the
output reference + Adam) from the same initial parameters and the same
collocation points, then writes a results table and figures.

Usage::

  python examples/pinn/main.py                          # configs/default.py
  python examples/pinn/main.py --config examples/pinn/configs/test.py
  python examples/pinn/main.py --problem helmholtz --depth 32 --lr adam=1e-4

Flags override fields of the config; see `configs/default.py` for all fields.
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import sys
from collections.abc import Sequence

import jax

from stablegrad_optax import init, pinn
from stablegrad_optax.models import ACTIVATIONS

HERE = pathlib.Path(__file__).parent
sys.path.insert(0, str(HERE.parent))  # examples/common.py

import train  # noqa: E402
from common import config_and_overrides, positive  # noqa: E402
from configs.default import OPTIMIZERS  # noqa: E402


def learning_rates(text: str) -> tuple[str, tuple[float, ...]]:
    """`NAME=LR[,LR...]`, e.g. `adam=1e-3` or `sgd-momentum=1e-6,1e-5`."""
    name, sep, values = text.partition("=")
    if not sep or name not in OPTIMIZERS:
        raise argparse.ArgumentTypeError(
            f"expected NAME=LR[,LR...] with NAME one of {', '.join(OPTIMIZERS)}; "
            f"got {text!r}"
        )
    try:
        grid = tuple(float(v) for v in values.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad learning rate in {text!r}") from None
    if not all(lr > 0 for lr in grid):
        raise argparse.ArgumentTypeError(f"learning rates must be > 0, got {text!r}")
    return name, grid


def reference(text: str) -> str | float:
    try:
        return float(text)
    except ValueError:
        pass
    if text in ("prediction", "given"):
        raise argparse.ArgumentTypeError(
            f"{text!r} needs a reference_scale at every step: choose the "
            "stablegrad(prediction)+adam optimizer for the paper's reference"
        )
    return text


def parse_args(argv: Sequence[str] | None = None):
    """The config with the flags' overrides applied, and the output directory."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(HERE / "configs" / "default.py"))
    parser.add_argument("--outdir", default="pinn_out")
    parser.add_argument("--problem", choices=sorted(pinn.PROBLEMS))
    parser.add_argument("--depth", type=positive(int), help="hidden layers")
    parser.add_argument("--width", type=positive(int))
    parser.add_argument("--activation", choices=sorted(ACTIVATIONS))
    parser.add_argument("--init", choices=init.INITIALIZERS)
    parser.add_argument("--steps", type=positive(int))
    parser.add_argument("--optimizers", nargs="+", choices=OPTIMIZERS)
    parser.add_argument("--seed", type=int)
    parser.add_argument(
        "--lr",
        type=learning_rates,
        action="append",
        metavar="NAME=LR[,LR...]",
        help="an optimizer's learning rate, or a grid it picks from (repeatable)",
    )
    parser.add_argument(
        "--reference",
        type=reference,
        help='StableGrad reference: "output", "geometric_mean", a number, ...',
    )
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    fields = ("problem", "depth", "width", "activation", "init", "steps", "seed")
    config, overrides = config_and_overrides(parser, args, fields)
    if args.optimizers:
        overrides["optimizers"] = tuple(args.optimizers)
    if args.lr:
        overrides["learning_rates"] = {**config.learning_rates, **dict(args.lr)}
    if args.reference is not None:
        overrides["reference"] = args.reference
    if "problem" in overrides and overrides["problem"] != config.problem:
        # Keep the options the new problem has (e.g. boundary_weight).
        fields = pinn.PROBLEMS[overrides["problem"]].__dataclass_fields__
        overrides["problem_options"] = {
            k: v for k, v in config.problem_options.items() if k in fields
        }
    config = dataclasses.replace(config, **overrides)
    missing = [n for n in config.optimizers if not config.learning_rates.get(n)]
    if missing:
        parser.error(f"no learning rate for {missing}: give --lr NAME=LR")
    return config, args.outdir


def main(argv: Sequence[str] | None = None):
    config, outdir = parse_args(argv)
    print(f"JAX devices: {jax.devices()}")
    return train.train_and_evaluate(config, outdir)


if __name__ == "__main__":
    main()
