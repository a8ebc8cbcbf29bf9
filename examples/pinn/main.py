"""Deep PINN: Adam and SGD with momentum, each with and without StableGrad.

Trains one deep tanh PINN (default: 2-D Poisson, 24 hidden layers of 50,
activation-aware init) with four optimizers from the same initial parameters
and the same collocation points, then writes a results table and figures.

Usage::

  python examples/pinn/main.py                          # configs/default.py
  python examples/pinn/main.py --config examples/pinn/configs/test.py
  python examples/pinn/main.py --problem helmholtz --depth 32 --lr adam=1e-4

Flags override fields of the config; see `configs/default.py` for all fields.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import pathlib
import sys
from collections.abc import Sequence

import jax

from stablegrad_optax import init, pinn
from stablegrad_optax.models import ACTIVATIONS

import train
from configs.default import OPTIMIZERS

HERE = pathlib.Path(__file__).parent


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


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


def load_config(path: str):
    """`get_config()` of the config file at `path`."""
    spec = importlib.util.spec_from_file_location("pinn_config", path)
    if spec is None or not pathlib.Path(path).is_file():
        raise FileNotFoundError(path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module.get_config()


def parse_args(argv: Sequence[str] | None = None):
    """The config with the flags' overrides applied, and the output directory."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(HERE / "configs" / "default.py"))
    parser.add_argument("--outdir", default="pinn_out")
    parser.add_argument("--problem", choices=sorted(pinn.PROBLEMS))
    parser.add_argument("--depth", type=positive_int, help="hidden layers")
    parser.add_argument("--width", type=positive_int)
    parser.add_argument("--activation", choices=sorted(ACTIVATIONS))
    parser.add_argument("--init", choices=init.INITIALIZERS)
    parser.add_argument("--steps", type=positive_int)
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
    try:
        config = load_config(args.config)
    except (FileNotFoundError, AttributeError) as error:
        parser.error(f"--config: no get_config() in {args.config!r} ({error})")
    fields = ("problem", "depth", "width", "activation", "init", "steps", "seed")
    overrides = {k: getattr(args, k) for k in fields if getattr(args, k) is not None}
    if args.optimizers:
        overrides["optimizers"] = tuple(args.optimizers)
    if args.lr:
        overrides["learning_rates"] = {**config.learning_rates, **dict(args.lr)}
    if args.reference is not None:
        overrides["reference"] = args.reference
    if args.no_progress:
        overrides["progress"] = False
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
