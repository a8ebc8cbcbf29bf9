"""The depth sweep's rows as cells: the protocols' lookups and their summaries.

A *cell* is one (problem, init, optimizer, depth); a *group* is the cells of
one (problem, init, optimizer). Results are summarised over the seeds other
than the tuning seed, which only picks learning rates.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import pinn_depth_sweep_results as results


class Sweep:
    """The rows of one sweep (one setting), with the protocol and summary lookups."""

    def __init__(self, rows: list[dict[str, Any]], tune_seed: int, tune_depth: int):
        if not rows:
            raise ValueError("the results file has no rows.")
        for name in results.SETTING:
            if len(set(r[name] for r in rows)) > 1:
                raise ValueError(
                    f"the results mix several values of {name!r}: report one "
                    "setting at a time (one results file per setting)."
                )
        for problem in set(r["problem"] for r in rows):
            weights = set(r["boundary_weight"] for r in rows if r["problem"] == problem)
            if len(weights) > 1:
                raise ValueError(f"{problem} runs mix boundary weights {weights}.")
        self.rows = rows
        self.tune_seed = tune_seed
        self.tune_depth = tune_depth
        ordered = lambda name: list(dict.fromkeys(r[name] for r in rows))
        self.problems = ordered("problem")
        self.inits = ordered("init")
        self.optimizers = ordered("optimizer")
        self.depths = sorted(set(r["depth"] for r in rows))
        self.seeds = sorted(set(r["seed"] for r in rows) - {tune_seed})

    def runs_of(self, problem, init, optimizer, **where) -> list[dict[str, Any]]:
        """The rows of one group (those with the fields of `where`)."""
        group = {"problem": problem, "init": init, "optimizer": optimizer}
        return results.select(self.rows, **group, **where)

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
        return results.protocol_lr(runs, grid, protocol, depth=depth, **tune)

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
        return {"lr": lr, "edge": edge, **results.summarize(errors)}

    def grid_trained(self, problem, init, optimizer, depth) -> tuple[int, int]:
        """(runs that train, runs) over the lr grid on the tuning seed."""
        runs = self.runs_of(problem, init, optimizer, depth=depth, seed=self.tune_seed)
        return sum(r["final_rel_l2"] < results.TRAINED for r in runs), len(runs)


def num(value: float) -> str:
    """An error for a table; a diverged run (infinite or NaN) reads "div"."""
    if not math.isfinite(value):
        return "div"
    return f"{value:.2g}" if value < 0.01 or value >= 10 else f"{value:.3f}"


def cell_text(summary: dict | None, full: bool) -> str:
    """median (trained/seeds), and with `full` the [min, max] range and the lr."""
    if summary is None or not summary["n"]:
        return "–"
    text = num(summary["median"])
    if full:
        text += (
            f" [{num(summary['min'])}, {num(summary['max'])}]"
            f" @{results.lr_text(summary['lr'])}{summary['edge']}"
        )
    return text + f" ({summary['trained']}/{summary['n']})"


def pair(sweep: Sweep, protocol, problem, depth, ours, theirs) -> tuple | None:
    """Two (init, optimizer) summaries of one problem and depth, both complete."""
    found = [sweep.summary(protocol, problem, *side, depth) for side in (ours, theirs)]
    complete = all(f and f["n"] == len(sweep.seeds) for f in found)
    return tuple(found) if complete else None


def paired_cells(sweep: Sweep, protocol: str, opt: str, base: str) -> list[tuple]:
    """(problem, init, depth, ours, theirs) where both have every reported seed."""
    cells = itertools.product(sweep.problems, sweep.inits, sweep.depths)
    return [
        (problem, init, depth, *found)
        for problem, init, depth in cells
        if (found := pair(sweep, protocol, problem, depth, (init, opt), (init, base)))
    ]
