"""Where a benchmark row came from: the code version and the device."""

from __future__ import annotations

import os
import pathlib
import subprocess

import jax

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()


def code_version() -> str:
    """The commit this process runs, ``-dirty`` if tracked files differ from it.

    Take it once, when a benchmark starts (the code it runs is loaded then); the
    results files, which benchmarks append to, do not count.
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


def device_name() -> str:
    """The first JAX device, e.g. ``cpu: cpu (2 cores)``."""
    device = jax.devices()[0]
    return f"{device.platform}: {device.device_kind} ({os.cpu_count()} cores)"
