"""The depth sweep's results file: its columns, reading, appending, lr choice.

One CSV row per training run. Shared by `pinn_depth_sweep.py` (which appends
rows and needs the tuning choice to know which runs come next) and
`pinn_depth_sweep_report.py` (which makes the tables, plots and README section).

The learning-rate protocols, both computed from the same rows:

* ``tuned``: per (problem, init, optimizer, depth), the grid point with the
  lowest final validation error on the tuning seed;
* ``fixed``: per (problem, init, optimizer), the grid point chosen that way at
  the tuning depth only, then kept at every depth.

A run *trains* when its final relative L2 error on the test grid is below
`TRAINED`. Seed `TUNE_SEED` picks the learning rates; results are reported over
the other seeds, so that no reported number was used to choose its own lr.

Columns: the run's key (`KEY`), then its results: the relative L2 error on the
test grid at the end (``final_rel_l2``) and the lowest of those logged every
``eval_every`` steps (``best_rel_l2``), on the validation points at the end
(``val_rel_l2``); the weighted loss and its terms as means over the last
``eval_every`` steps; the smallest per-layer weight-gradient std and the
imbalance (largest / smallest) at the last step; whether the run diverged; the
batch's wall time (compilation and evaluation included) divided by its number
of runs (``wall_s``, ``batch_runs``); device, date and commit.
"""

from __future__ import annotations

import csv
import json
import math
import pathlib
import statistics
from collections.abc import Iterable, Sequence
from typing import Any

# What identifies a run: a row with the same values is not run again.
KEY = (
    "problem",
    "depth",
    "width",
    "activation",
    "init",
    "optimizer",
    "lr",
    "seed",
    "steps",
    "num_interior",
    "num_boundary",
    "boundary_weight",
)
_MEASURED = (
    "final_rel_l2",
    "best_rel_l2",
    "val_rel_l2",
    "final_loss",
    "loss_residual",
    "loss_boundary",
    "loss_initial",
    "min_layer_grad_std",
    "grad_imbalance",
)
COLUMNS = (
    *KEY,
    *_MEASURED,
    "diverged",
    "wall_s",
    "batch_runs",
    "device",
    "date",
    "git_commit",
)
TRAINED = 0.1
PROTOCOLS = ("tuned", "fixed")
TUNE_SEED = 0
TUNE_DEPTH = 16
RESULTS = pathlib.Path(__file__).resolve().parent / "results" / "pinn_depth_sweep.csv"
_INTS = (
    "depth",
    "width",
    "seed",
    "steps",
    "num_interior",
    "num_boundary",
    "batch_runs",
)
_FLOATS = ("lr", "boundary_weight", *_MEASURED, "wall_s")


def lr_text(lr: float | str) -> str:
    """The learning rate as written in the file and in tables: ``3e-04``."""
    lr = float(lr)
    return f"{lr:.0e}" if lr == float(f"{lr:.0e}") else f"{lr:.3g}"


def _parse(row: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = dict(row)
    for name in _INTS:
        out[name] = int(row[name])
    for name in _FLOATS:
        out[name] = float(row[name]) if row[name] != "" else math.nan
    out["diverged"] = row["diverged"] == "True"
    return out


def drop_partial_line(path: str | pathlib.Path) -> bool:
    """Removes a last line cut short (a run killed while writing); True if one was."""
    path = pathlib.Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return False
    text = path.read_text()
    if text.endswith("\n"):
        return False
    path.write_text(text[: text.rfind("\n") + 1])
    return True


def read_rows(path: str | pathlib.Path) -> list[dict[str, Any]]:
    """The rows of a results file (none if it does not exist yet)."""
    path = pathlib.Path(path)
    if not path.exists():
        return []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise ValueError(
                f"{path} has columns {reader.fieldnames}, expected {list(COLUMNS)}."
            )
        return [_parse(row) for row in reader]


def append_rows(path: str | pathlib.Path, rows: Iterable[dict[str, Any]]) -> None:
    """Appends rows (writing the header first into a new file)."""
    path = pathlib.Path(path)
    new = not path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        if new:
            writer.writeheader()
        for row in rows:
            text = {k: row[k] for k in COLUMNS}
            text["lr"] = lr_text(row["lr"])
            for name in _FLOATS:
                if name == "lr":
                    continue
                value = row[name]
                missing = value is None or math.isnan(value)
                text[name] = "" if missing else f"{value:.6g}"
            writer.writerow(text)


def run_key(row: dict[str, Any]) -> tuple:
    """What identifies a run (`KEY`), the learning rate as written."""
    return tuple(lr_text(row[k]) if k == "lr" else row[k] for k in KEY)


def history_path(path: str | pathlib.Path) -> pathlib.Path:
    """Where the per-run histories of a results file go: ``<stem>_history.jsonl``."""
    path = pathlib.Path(path)
    return path.with_name(f"{path.stem}_history.jsonl")


def append_history(path: str | pathlib.Path, rows: Iterable[dict[str, Any]]) -> None:
    """Appends each row's key and ``history`` as one JSON line.

    Written before the rows themselves: a run killed in between is run again
    and its key appears twice; `read_history` keeps the last.
    """
    lines = []
    for row in rows:
        key = dict(zip(KEY, run_key(row), strict=True))
        lines.append(json.dumps({**key, **row["history"]}) + "\n")
    with history_path(path).open("a") as f:
        f.writelines(lines)


def read_history(path: str | pathlib.Path) -> dict[tuple, dict[str, list]]:
    """Histories by run key (as `select` compares them); the last line wins."""
    target = history_path(path)
    if not target.exists():
        return {}
    out = {}
    for line in target.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # blank, or cut short by a kill: that run is run again
        out[run_key(record)] = record
        for k in KEY:
            del record[k]
    return out


def select(rows: Sequence[dict[str, Any]], **where) -> list[dict[str, Any]]:
    """The rows whose fields equal `where` (learning rates compared as written)."""
    if "lr" in where:
        where = {**where, "lr": lr_text(where["lr"])}
    return [
        r
        for r in rows
        if all((lr_text(r[k]) if k == "lr" else r[k]) == v for k, v in where.items())
    ]


def _error(value: float) -> float:
    return math.inf if math.isnan(value) else value


def choose_lr(
    rows: Sequence[dict[str, Any]], grid: Sequence[float], **cell
) -> float | None:
    """The grid point with the lowest final validation error, or None.

    `cell` names one depth and one seed (the tuning seed); None until every
    grid point has a row there (or for an empty grid). Ties go to the smaller
    learning rate.
    """
    if not grid:
        return None
    errors = {}
    for lr in grid:
        found = select(rows, lr=lr, **cell)
        if not found:
            return None
        errors[lr] = _error(found[0]["val_rel_l2"])
    return min(sorted(errors), key=lambda lr: errors[lr])


def protocol_lr(
    rows: Sequence[dict[str, Any]],
    grid: Sequence[float],
    protocol: str,
    *,
    depth: int,
    tune_depth: int,
    tune_seed: int,
    **cell,
) -> float | None:
    """The learning rate a protocol (`PROTOCOLS`) gives at `depth`."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}.")
    at = depth if protocol == "tuned" else tune_depth
    return choose_lr(rows, grid, depth=at, seed=tune_seed, **cell)


def summarize(errors: Sequence[float]) -> dict[str, float]:
    """Median, min, max of final errors (a diverged run counts as infinite)."""
    values = sorted(_error(e) for e in errors)
    return {
        "n": len(values),
        "median": statistics.median(values) if values else math.nan,
        "min": values[0] if values else math.nan,
        "max": values[-1] if values else math.nan,
        "trained": sum(v < TRAINED for v in values),
    }
