"""What the examples and the benchmarks share: provenance, flags, configs, the
optimizers they compare.

The scripts under ``examples/`` and ``benchmarks/`` run by path, each with its
own folder on ``sys.path``; one line before their other imports adds this
module's folder::

  sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # common

(``benchmarks/`` has ``examples`` in that line.) The library,
``stablegrad_optax``, never imports this module.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
import pathlib
import shlex
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import Any

import jax
import optax

import stablegrad_optax as sgo

ROOT = pathlib.Path(__file__).resolve().parents[1]

# The optimizers the MLP regression benchmark compares (the PINN example can
# build them too, with the baselines below): Adam and SGD with momentum, alone
# and after StableGrad with the output layer's reference, and Adam after the
# paper's StableGrad.
OPTIMIZERS = (
    "adam",
    "stablegrad(prediction)+adam",
    "stablegrad+adam",
    "sgd-momentum",
    "stablegrad+sgd-momentum",
)

AGC_CLIP = 0.01  # `optax.adaptive_grad_clip`'s clipping in the agc+adam baseline


def agc_adam(learning_rate) -> optax.GradientTransformation:
    """The agc+adam baseline of the PINN comparisons: each unit's gradient
    clipped to `AGC_CLIP` times its weights' norm (Brock et al. 2021), then Adam."""
    return optax.chain(optax.adaptive_grad_clip(AGC_CLIP), optax.adam(learning_rate))


# ----------------------------------------------------------------------------
# Provenance: what ran, where and when, stored beside the numbers.


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()


def code_version() -> str:
    """The commit this process runs, ``-dirty`` if tracked files differ from it.

    Take it once, when a run starts (the code it runs is loaded then); the
    committed results, which benchmarks append to, do not count.
    """
    try:
        commit = _git("rev-parse", "--short", "HEAD")
        changed = _git(
            "status",
            "--porcelain",
            "--untracked-files=no",
            "--",
            ".",
            ":!benchmarks/results",
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("-dirty" if changed else "")


def _cpu_model() -> str:
    """The CPU's model name and family/model numbers from /proc/cpuinfo, if any."""
    try:
        lines = pathlib.Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return "cpu"
    fields = {}
    for line in lines:
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    name = fields.get("model name") or fields.get("Model") or "cpu"
    numbers = [f"{k} {fields[k]}" for k in ("cpu family", "model") if fields.get(k)]
    return f"{name} ({', '.join(numbers)})" if numbers else name


def device_name() -> str:
    """The first JAX device and the machine, with the XLA flags in effect.

    E.g. ``cpu: AMD EPYC (cpu family 25, model 17) (2 cores)``; a GPU reads
    ``gpu: NVIDIA H100 80GB HBM3 (16 cores)``; ``; XLA_FLAGS=...`` follows when
    that variable is set.
    """
    device = jax.devices()[0]
    kind = _cpu_model() if device.platform == "cpu" else device.device_kind
    name = f"{device.platform}: {kind} ({os.cpu_count()} cores)"
    flags = os.environ.get("XLA_FLAGS")
    return f"{name}; XLA_FLAGS={flags}" if flags else name


def run_metadata(**extra: Any) -> dict[str, Any]:
    """The command, device, date, versions and commit of this run, and `extra`."""
    return {
        "command": shlex.join(["python", *sys.argv]),
        "device": device_name(),
        "date": datetime.date.today().isoformat(),
        "jax": jax.__version__,
        "optax": optax.__version__,
        "stablegrad_optax": sgo.__version__,
        "git_commit": code_version(),
        **extra,
    }


# ----------------------------------------------------------------------------
# Command line.


def _number(kind: type, text: str):
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a {kind.__name__}: {text!r}") from None


def at_least(low: int) -> Callable[[str], int]:
    """An argparse ``type``: an integer >= `low`."""

    def parse(text: str) -> int:
        value = _number(int, text)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {text!r}")
        return value

    return parse


def positive(kind: type) -> Callable[[str], int | float]:
    """An argparse ``type``: a number of `kind` (int or float) above zero."""
    if kind is int:
        return at_least(1)

    def parse(text: str) -> float:
        value = _number(kind, text)
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
        return value

    return parse


def name_list(choices: Sequence[str], kind: str) -> Callable[[str], list[str]]:
    """An argparse ``type``: a comma-separated, non-empty list of `choices`."""

    def parse(text: str) -> list[str]:
        names = [n for n in text.split(",") if n]
        unknown = [n for n in names if n not in choices]
        if unknown or not names:
            raise argparse.ArgumentTypeError(
                f"unknown {kind} {unknown or text!r}; choose from {', '.join(choices)}"
            )
        return names

    return parse


CONFIG_MODULE = "example_config"  # the name a config file loaded by path gets


def load_config(path: str):
    """`get_config()` of the config file at `path`."""
    spec = importlib.util.spec_from_file_location(CONFIG_MODULE, path)
    if spec is None or not pathlib.Path(path).is_file():
        raise FileNotFoundError(path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module.get_config()


def config_and_overrides(
    parser: argparse.ArgumentParser, args: argparse.Namespace, fields: Sequence[str]
) -> tuple[Any, dict[str, Any]]:
    """The config of ``--config``, and the `fields` whose flags were given.

    The overrides say ``progress=False`` where ``--no-progress`` was given; the
    caller adds what its other flags say and applies them with
    `dataclasses.replace`. A config file without `get_config` is an argparse
    error.
    """
    try:
        config = load_config(args.config)
    except (FileNotFoundError, AttributeError) as error:
        parser.error(f"--config: no get_config() in {args.config!r} ({error})")
    given = {k: getattr(args, k) for k in fields if getattr(args, k) is not None}
    if getattr(args, "no_progress", False):
        given["progress"] = False
    return config, given
