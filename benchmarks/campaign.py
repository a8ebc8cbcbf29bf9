"""Runs a campaign: a JSON file naming a benchmark script and its stages.

A campaign (``benchmarks/campaigns/*.json``) names the script (a module of
``benchmarks/`` with ``main(argv)``), the options every stage shares and the
stages in order, each a few options of its own; ``"optional"`` stages run only
with ``--optional``. The script skips the runs its results file holds, so a
campaign resumes where it stopped; ``--max-minutes`` stops it starting a new
batch after that long (one under way finishes).

  python benchmarks/campaign.py benchmarks/campaigns/pinn_long_budget.json \\
      --max-minutes 120
"""

from __future__ import annotations

import argparse
import importlib
import json
import pathlib
import sys
import time
from collections.abc import Sequence
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[1]


def load(path: str | pathlib.Path) -> dict[str, Any]:
    """The campaign at `path`, checked: a script, options and named stages."""
    campaign = json.loads(pathlib.Path(path).read_text())
    missing = {"script", "options", "stages"} - set(campaign)
    if missing:
        raise ValueError(f"campaign {path} lacks {sorted(missing)}")
    for stage in campaign["stages"]:
        if "name" not in stage:
            raise ValueError(f"campaign {path}: a stage without a name: {stage}")
    return campaign


def stage_argv(campaign: dict[str, Any], stage: dict[str, Any]) -> list[str]:
    """The script's command line for one stage (the stage's options win)."""
    options = {**campaign["options"], **stage}
    options = {k: v for k, v in options.items() if k not in ("name", "optional")}
    if "results" in options:  # relative to the repository root
        options["results"] = str(ROOT / options["results"])
    argv = []
    for key, value in options.items():
        if isinstance(value, bool):  # a flag: given when true
            argv += [f"--{key}"] if value else []
        else:
            argv += [f"--{key}", str(value)]
    return argv


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("campaign", type=pathlib.Path)
    parser.add_argument("--optional", action="store_true", help="optional stages too")
    parser.add_argument("--max-minutes", type=float, default=None)
    args = parser.parse_args(argv)
    campaign = load(args.campaign)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    script = importlib.import_module(campaign["script"])
    start = time.perf_counter()
    for stage in campaign["stages"]:
        if stage.get("optional") and not args.optional:
            continue
        stage_args = stage_argv(campaign, stage)
        if args.max_minutes is not None:
            left = args.max_minutes - (time.perf_counter() - start) / 60
            if left <= 0:
                print("stopping (--max-minutes)", flush=True)
                return
            stage_args += ["--max-minutes", f"{left:.2f}"]
        print(f"== {stage['name']}", flush=True)
        script.main(stage_args)


if __name__ == "__main__":
    main()
