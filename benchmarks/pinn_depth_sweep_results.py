"""The depth sweep's results file: its columns, reading, appending, lr choice.

One CSV row per run (`COLUMNS`, identified by `KEY`): the relative L2 error on
the test grid at the end (``final_rel_l2``), the lowest logged (``best_rel_l2``),
on the validation points (``val_rel_l2``); the loss and its terms (means over the
last ``eval_every`` steps); the smallest per-layer weight-gradient std and the
imbalance (largest / smallest) at the last step; whether it diverged; its batch's
wall time (compile included) over its runs; device, date, commit. A protocol
(`PROTOCOLS`) takes the grid point with the lowest final validation error on seed
`TUNE_SEED`: ``tuned`` at each depth, ``fixed`` at `TUNE_DEPTH` for every depth.

`Sweep` reads the rows as *cells* (problem, init, optimizer, depth; a *group*:
one problem, init and optimizer), summarised over the seeds but the tuning seed,
which only picks learning rates; a run *trains* when its final error is below
`TRAINED`.
"""

from __future__ import annotations

import itertools
import math
import pathlib
import statistics
from collections.abc import Iterable, Sequence
from typing import Any

import csvrows

# The training setting: one value per report (one results file per setting).
SETTING = ("width", "activation", "steps", "num_interior", "num_boundary")
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
RULE = (  # `judge` and `geo_mean_ratio`, as the pages state them
    f"better where the first's median error is more than {round((1 - BETTER) * 100)}%"
    " lower than the second's, worse where it is more than "
    f"{round((1 / BETTER - 1) * 100)}% higher; the ratio is the geometric mean of "
    "the ratio of median errors (below 1: the first better)"
)
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


def _written(row: dict[str, Any], name: str):
    """A field of `row` as the file holds it (the learning rate as written)."""
    return lr_text(row[name]) if name == "lr" else row[name]


def run_key(row: dict[str, Any]) -> tuple:
    """What identifies a run (`KEY`), the learning rate as written."""
    return tuple(_written(row, k) for k in KEY)


def append_history(path: str | pathlib.Path, rows: Iterable[dict[str, Any]]) -> None:
    """Appends each row's key and ``history`` as one JSON line."""
    lines = ({**dict(zip(KEY, run_key(r), strict=True)), **r["history"]} for r in rows)
    csvrows.append_history(path, lines)


def read_history(path: str | pathlib.Path) -> dict[tuple, dict]:
    """History records (the key's fields too) by `run_key`; the last line wins."""
    return csvrows.read_history(path, key=run_key)


def select(rows: Sequence[dict[str, Any]], **where) -> list[dict[str, Any]]:
    """The rows whose fields equal `where` (learning rates compared as written)."""
    where = {k: _written(where, k) for k in where}
    return [r for r in rows if all(_written(r, k) == v for k, v in where.items())]


def _error(value: float) -> float:
    return math.inf if math.isnan(value) else value


def choose_lr(rows: Sequence[dict], grid: Sequence[float], **cell) -> float | None:
    """The grid point with the lowest final validation error at `cell` (a depth
    and the tuning seed; ties: the smaller lr), or None until each has a row."""
    errors = {}
    for lr in grid:
        found = select(rows, lr=lr, **cell)
        if not found:
            return None
        errors[lr] = _error(found[0]["val_rel_l2"])
    return min(sorted(errors), key=errors.get, default=None)


def protocol_lr(rows, grid, protocol: str, *, depth, tune_depth, tune_seed, **cell):
    """The learning rate (or None) a protocol (`PROTOCOLS`) gives at `depth`."""
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
    return math.exp(statistics.fmean(math.log(error_ratio(a, b)) for a, b in pairs))


class Sweep:
    """The rows of one sweep (one setting), with the protocol and summary lookups."""

    def __init__(self, rows: list[dict[str, Any]], tune_seed: int, tune_depth: int):
        if not rows:
            raise ValueError("the results file has no rows.")
        for name in SETTING:
            if len(set(r[name] for r in rows)) > 1:
                raise ValueError(
                    f"the results mix several values of {name!r}: report one "
                    "setting at a time (one results file per setting)."
                )
        for problem in set(r["problem"] for r in rows):
            weights = set(r["boundary_weight"] for r in rows if r["problem"] == problem)
            if len(weights) > 1:
                raise ValueError(f"{problem} runs mix boundary weights {weights}.")
        self.rows, self.tune_seed, self.tune_depth = rows, tune_seed, tune_depth
        ordered = lambda name: list(dict.fromkeys(r[name] for r in rows))
        self.problems = ordered("problem")
        self.inits = ordered("init")
        self.optimizers = ordered("optimizer")
        self.depths = sorted(set(r["depth"] for r in rows))
        self.seeds = sorted(set(r["seed"] for r in rows) - {tune_seed})

    def runs_of(self, problem, init, optimizer, **where) -> list[dict[str, Any]]:
        """The rows of one group (those with the fields of `where`)."""
        group = {"problem": problem, "init": init, "optimizer": optimizer}
        return select(self.rows, **group, **where)

    def ran(self, problem, init, optimizers: Sequence[str]) -> list[str]:
        """Those of `optimizers` (in order) with runs in one problem and init."""
        return [o for o in optimizers if self.runs_of(problem, init, o)]

    def grid(self, problem, init, optimizer) -> list[float]:
        """The learning rates run on the tuning seed in a group."""
        tuned = self.runs_of(problem, init, optimizer, seed=self.tune_seed)
        return sorted(set(r["lr"] for r in tuned))

    def tuning(self, row) -> bool:
        """Whether a run is on the tuning seed (it picks lrs, it is not reported)."""
        return row["seed"] == self.tune_seed

    def lr(self, protocol, problem, init, optimizer, depth) -> float | None:
        """The learning rate `protocol` picks for a cell (None until it can)."""
        group = (problem, init, optimizer)
        tune = {"tune_depth": self.tune_depth, "tune_seed": self.tune_seed}
        runs, grid = self.runs_of(*group), self.grid(*group)
        return protocol_lr(runs, grid, protocol, depth=depth, **tune)

    def summary(self, protocol, problem, init, optimizer, depth) -> dict | None:
        """Final errors over the reported seeds at the protocol's lr (None until
        chosen); ``edge``: the lr is the grid's top (↑) or bottom (↓)."""
        lr = self.lr(protocol, problem, init, optimizer, depth)
        if lr is None:
            return None
        runs = self.runs_of(problem, init, optimizer, depth=depth, lr=lr)
        grid = self.grid(problem, init, optimizer)
        edge = "↑" if lr == grid[-1] else "↓" if lr == grid[0] else ""
        errors = [r["final_rel_l2"] for r in runs if not self.tuning(r)]
        return {"lr": lr, "edge": edge, **summarize(errors)}

    def complete(self, protocol, problem, init, optimizer, depth) -> dict | None:
        """`summary` where it has every reported seed, else None."""
        found = self.summary(protocol, problem, init, optimizer, depth)
        return found if found and found["n"] == len(self.seeds) else None

    def grid_trained(self, problem, init, optimizer, depth) -> tuple[int, int]:
        """(runs that train, runs) over the lr grid on the tuning seed."""
        runs = self.runs_of(problem, init, optimizer, depth=depth, seed=self.tune_seed)
        return sum(r["final_rel_l2"] < TRAINED for r in runs), len(runs)


def num(value: float) -> str:
    """An error for a table; a diverged run (infinite or NaN) reads "div"."""
    if not math.isfinite(value):
        return "div"
    return f"{value:.2g}" if value < 0.01 or value >= 10 else f"{value:.3f}"


def pair(sweep: Sweep, protocol, problem, depth, ours, theirs) -> tuple | None:
    """Two (init, optimizer) summaries of one problem and depth, both complete."""
    found = [sweep.complete(protocol, problem, *side, depth) for side in (ours, theirs)]
    return tuple(found) if all(found) else None


def paired_cells(sweep: Sweep, protocol: str, opt: str, base: str) -> list[tuple]:
    """(problem, init, depth, ours, theirs) where both have every reported seed."""
    cells = itertools.product(sweep.problems, sweep.inits, sweep.depths)
    return [
        (problem, init, depth, *found)
        for problem, init, depth in cells
        if (found := pair(sweep, protocol, problem, depth, (init, opt), (init, base)))
    ]


def counts(cells: Sequence[tuple]) -> list[int]:
    """How many (..., ours, theirs) `cells` are better, the same, worse (`judge`)."""
    verdicts = [judge(c[-2]["median"], c[-1]["median"]) for c in cells]
    return [verdicts.count(v) for v in range(3)]


def cells_ratio(cells: Sequence[tuple]) -> float:
    """The geometric mean of the (..., ours, theirs) `cells`' error ratios."""
    return geo_mean_ratio([(c[-2]["median"], c[-1]["median"]) for c in cells])
