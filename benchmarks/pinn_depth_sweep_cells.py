"""The depth sweep's rows as cells: the protocols' lookups and their summaries.

A *cell* is one (problem, init, optimizer, depth); a *group* is the cells of
one (problem, init, optimizer). Results are summarised over the seeds other
than the tuning seed, which only picks learning rates. Shared by the report's
tables (`pinn_depth_sweep_pages`), verdicts (`pinn_depth_sweep_verdicts`) and
figures (`pinn_depth_sweep_figures`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pinn_depth_sweep_results as results

# Columns that must hold one value in a report (per problem for the last).
SETTING = ("width", "activation", "steps", "num_interior", "num_boundary")


class Sweep:
    """The rows of one sweep, with the protocol and summary lookups.

    A *group* is one (problem, init, optimizer): its runs span depths, learning
    rates and seeds.
    """

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
        self.rows = rows
        self.tune_seed = tune_seed
        self.tune_depth = tune_depth
        ordered = lambda name: list(dict.fromkeys(r[name] for r in rows))
        self.problems = ordered("problem")
        self.inits = ordered("init")
        self.optimizers = ordered("optimizer")
        self.depths = sorted(set(r["depth"] for r in rows))
        self.seeds = sorted(set(r["seed"] for r in rows) - {tune_seed})

    def runs_of(self, problem, init, optimizer) -> list[dict[str, Any]]:
        """The rows of one group."""
        return results.select(
            self.rows, problem=problem, init=init, optimizer=optimizer
        )

    def ran(self, problem, init, optimizers: Sequence[str]) -> list[str]:
        """Those of `optimizers` (in order) with runs in one problem and init."""
        return [o for o in optimizers if self.runs_of(problem, init, o)]

    def grid(self, problem, init, optimizer) -> list[float]:
        """The learning rates run on the tuning seed in a group."""
        tuned = [r for r in self.runs_of(problem, init, optimizer) if self.tuning(r)]
        return sorted(set(r["lr"] for r in tuned))

    def tuning(self, row) -> bool:
        """Whether a run is on the tuning seed (it picks lrs, it is not reported)."""
        return row["seed"] == self.tune_seed

    def lr(self, protocol, problem, init, optimizer, depth) -> float | None:
        rows = self.runs_of(problem, init, optimizer)
        return results.protocol_lr(
            rows,
            self.grid(problem, init, optimizer),
            protocol,
            depth=depth,
            tune_depth=self.tune_depth,
            tune_seed=self.tune_seed,
        )

    def summary(self, protocol, problem, init, optimizer, depth) -> dict | None:
        """Final relative L2 over the reported seeds at the protocol's lr.

        None until the lr is chosen; ``edge`` marks an lr at the top (↑) or the
        bottom (↓) of the grid, where a wider grid might do better.
        """
        lr = self.lr(protocol, problem, init, optimizer, depth)
        if lr is None:
            return None
        runs = [
            r
            for r in results.select(
                self.runs_of(problem, init, optimizer), depth=depth, lr=lr
            )
            if not self.tuning(r)
        ]
        grid = self.grid(problem, init, optimizer)
        edge = "↑" if lr == grid[-1] else "↓" if lr == grid[0] else ""
        return {
            "lr": lr,
            "edge": edge,
            **results.summarize([r["final_rel_l2"] for r in runs]),
        }

    def grid_trained(self, problem, init, optimizer, depth) -> tuple[int, int]:
        """(runs that train, runs) over the lr grid on the tuning seed."""
        runs = [
            r
            for r in results.select(self.runs_of(problem, init, optimizer), depth=depth)
            if self.tuning(r)
        ]
        return sum(r["final_rel_l2"] < results.TRAINED for r in runs), len(runs)


def num(value: float) -> str:
    """An error for a table; a diverged run (infinite or NaN) reads "div"."""
    if math.isinf(value) or math.isnan(value):
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
    if all(f and f["n"] == len(sweep.seeds) for f in found):
        return tuple(found)
    return None


def paired_cells(sweep: Sweep, protocol: str, opt: str, base: str) -> list[tuple]:
    """(problem, init, depth, ours, theirs) where both have every reported seed."""
    return [
        (problem, init, depth, *found)
        for problem in sweep.problems
        for init in sweep.inits
        for depth in sweep.depths
        if (found := pair(sweep, protocol, problem, depth, (init, opt), (init, base)))
    ]
