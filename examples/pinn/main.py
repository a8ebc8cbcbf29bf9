"""Deep PINN: the field's standard recipe, with and without the paper's StableGrad.

Trains a deep tanh PINN (default: viscous Burgers, 8 hidden layers of 50,
activation-aware init) with jaxpi's core recipe (Adam with warmup and
exponential decay, resampled points, gradient-norm loss weighting), alone and
with the paper's StableGrad before Adam, three seeds per recipe trained
together, then writes a results table (beside the long-budget campaign's
20,000-step results for the same cell) and figures.

Usage::

  python examples/pinn/main.py                          # configs/default.py
  python examples/pinn/main.py --config examples/pinn/configs/test.py
  python examples/pinn/main.py --problem helmholtz --steps 10000 --seeds 1,2,3,4

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
from common import config_and_overrides, name_list, positive  # noqa: E402


def seed_list(text: str) -> tuple[int, ...]:
    """Distinct integers separated by commas, e.g. ``1,2,3``."""
    try:
        seeds = tuple(int(s) for s in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not integers: {text!r}") from None
    if len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"seeds repeat: {text!r}")
    return seeds


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
    parser.add_argument(
        "--recipes",
        type=name_list(tuple(train.RECIPES), "recipe"),
        help="comma-separated, from: " + ", ".join(train.RECIPES),
    )
    parser.add_argument("--seeds", type=seed_list, help="e.g. 1,2,3")
    parser.add_argument("--lr", type=positive(float), help="the schedule's peak")
    parser.add_argument(
        "--threshold", type=positive(float), help="the rel-L2 the table counts below"
    )
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    fields = (
        "problem",
        "depth",
        "width",
        "activation",
        "init",
        "steps",
        "seeds",
        "threshold",
    )
    config, overrides = config_and_overrides(parser, args, fields)
    if args.recipes:
        overrides["recipes"] = tuple(args.recipes)
    if args.lr is not None:
        overrides["learning_rate"] = args.lr
    return dataclasses.replace(config, **overrides), args.outdir


def main(argv: Sequence[str] | None = None):
    config, outdir = parse_args(argv)
    print(f"JAX devices: {jax.devices()}")
    return train.train_and_evaluate(config, outdir)


if __name__ == "__main__":
    main()
