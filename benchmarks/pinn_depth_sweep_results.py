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

import math
import pathlib
import statistics
from collections.abc import Iterable, Sequence
from typing import Any

import csvrows

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
BETTER = 0.9  # a ratio of median errors below this is better, above 1/BETTER worse
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


def read_rows(path: str | pathlib.Path) -> list[dict[str, Any]]:
    """The rows of a results file (none if it does not exist yet)."""
    rows = csvrows.read_rows(path, COLUMNS, ints=_INTS, floats=_FLOATS)
    for row in rows:
        row["diverged"] = row["diverged"] == "True"
    return rows


def append_rows(path: str | pathlib.Path, rows: Iterable[dict[str, Any]]) -> None:
    """Appends rows (writing the header first into a new file)."""
    text = (
        {
            **{k: row[k] for k in COLUMNS},
            **{k: csvrows.float_text(row[k]) for k in _FLOATS},
            "lr": lr_text(row["lr"]),
        }
        for row in rows
    )
    csvrows.append_rows(path, COLUMNS, text)


def run_key(row: dict[str, Any]) -> tuple:
    """What identifies a run (`KEY`), the learning rate as written."""
    return tuple(lr_text(row[k]) if k == "lr" else row[k] for k in KEY)


def append_history(path: str | pathlib.Path, rows: Iterable[dict[str, Any]]) -> None:
    """Appends each row's key and ``history`` as one JSON line."""

    def line(row: dict[str, Any]) -> dict:
        return {**dict(zip(KEY, run_key(row), strict=True)), **row["history"]}

    csvrows.append_history(path, map(line, rows))


def read_history(path: str | pathlib.Path) -> dict[tuple, dict[str, list]]:
    """Histories by run key (as `select` compares them); the last line wins."""
    records = csvrows.read_history(path, key=run_key)
    return {
        key: {k: v for k, v in record.items() if k not in KEY}
        for key, record in records.items()
    }


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


def error_ratio(a: float, b: float) -> float:
    """a / b for errors, with non-finite errors capped at 10 (a failed run)."""
    cap = lambda x: min(x, 10.0) if not math.isnan(x) else 10.0
    return max(cap(a), 1e-12) / max(cap(b), 1e-12)


def judge(ours: float, theirs: float) -> int:
    """0 better, 1 same, 2 worse: ours against theirs, by `error_ratio`."""
    ratio = error_ratio(ours, theirs)
    return 0 if ratio < BETTER else 2 if ratio > 1 / BETTER else 1


def geo_mean_ratio(pairs: Sequence[tuple[float, float]]) -> float:
    """The geometric mean of `error_ratio` over (ours, theirs) pairs."""
    logs = [math.log(error_ratio(a, b)) for a, b in pairs]
    return math.exp(sum(logs) / len(logs))
