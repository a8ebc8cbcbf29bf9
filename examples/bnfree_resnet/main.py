"""BatchNorm-free ResNet: does SGD at lr 0.1 collapse without BN, and what saves it?

Trains one ResNet per variant (with BatchNorm, without it, without it plus
StableGrad with the output layer's reference or the paper's, SkipInit or
adaptive gradient clipping) from the same initial kernels on the same batches,
then writes a results table and a loss plot. The paper's reference, the std of
dL/dlogits, reaches StableGrad from each step's own backward pass
(`stablegrad_optax.prediction_value_and_grad`).

Usage::

  python examples/bnfree_resnet/main.py                  # configs/default.py
  python examples/bnfree_resnet/main.py --config examples/bnfree_resnet/configs/test.py
  python examples/bnfree_resnet/main.py --dataset cifar10 --data-dir ~/data --width 64
  python examples/bnfree_resnet/main.py --variants bn "none+stablegrad(prediction)"

Flags override fields of the config; see `configs/default.py` for all fields.
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import sys
from collections.abc import Sequence

import jax

HERE = pathlib.Path(__file__).parent
sys.path.insert(0, str(HERE.parent))  # examples/common.py

import train  # noqa: E402
from common import config_and_overrides, positive  # noqa: E402


def parse_args(argv: Sequence[str] | None = None):
    """The config with the flags' overrides applied, and the output directory."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(HERE / "configs" / "default.py"))
    parser.add_argument("--outdir", default="bnfree_out")
    parser.add_argument("--model", choices=sorted(train.MODELS))
    parser.add_argument("--width", type=positive(int))
    parser.add_argument(
        "--dataset", choices=("digits32", "synthetic", "cifar10", "cifar100")
    )
    parser.add_argument("--data-dir", help="folder of the CIFAR python archive")
    parser.add_argument("--variants", nargs="+", choices=train.VARIANTS)
    parser.add_argument("--learning-rate", type=float)
    parser.add_argument("--batch-size", type=positive(int))
    parser.add_argument("--steps", type=positive(int))
    parser.add_argument("--seed", type=int)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    fields = ("model", "width", "dataset", "data_dir", "learning_rate", "batch_size")
    fields += ("steps", "seed")
    config, overrides = config_and_overrides(parser, args, fields)
    if args.variants:
        overrides["variants"] = tuple(args.variants)
    config = dataclasses.replace(config, **overrides)
    if config.steps % config.log_every:
        parser.error(f"steps must be a multiple of log_every ({config.log_every})")
    return config, args.outdir


def main(argv: Sequence[str] | None = None):
    config, outdir = parse_args(argv)
    print(f"JAX devices: {jax.devices()}")
    return train.train_and_evaluate(config, outdir)


if __name__ == "__main__":
    main()
