"""Tables, plots and the depth sweep's results page, from the sweep's CSV.

  python benchmarks/pinn_depth_sweep_report.py            # write all
  python benchmarks/pinn_depth_sweep_report.py --check    # all up to date?

Writes ``pinn_depth_sweep.md`` (every table) and ``pinn_depth_sweep_<problem>.png``
(relative L2 error against depth) beside the CSV; from the per-step history,
where it has them, ``pinn_depth_sweep_history.png`` (gradient imbalance and test
error at the deepest depth) and ``pinn_depth_sweep_reference.png`` (the
prediction reference and the loss at the tuning depth); and the docs page
``docs/results/depth_sweep.md`` ("Results: the depth sweep"). Every number on
that page comes from the CSV. Results are summarised over the seeds other than
the tuning seed (which only picks learning rates). The paper's StableGrad
(`PAPER`) comes first: in the tables, in the comparisons (one line per
baseline, `judged_pairs`) and in the verdicts on the paper's claims.
"""

from __future__ import annotations

import argparse
import collections
import functools
import math
import pathlib
import statistics
import sys
from collections.abc import Sequence
from typing import Any

import mdtables
import pinn_depth_sweep_results as results

SCRIPT = "benchmarks/pinn_depth_sweep_report.py"
TITLE = "# Results: the depth sweep"
PAPER = "stablegrad(prediction)+adam"  # the paper's StableGrad
# The page's row order (any other optimizer run follows; groups not run get
# no row): the paper's variant, its baselines, its own readings and ablations,
# then the other references (the library's output-layer default first) and the
# rest.
HEADLINE = (
    PAPER,
    "adam",
    "adam+decay",
    "adam+decay(1%)",
    "adam+warmup+decay",
    "agc+adam",
    "stablegrad(prediction)+adam+decay",
    "stablegrad(prediction-values)+adam",
    "stablegrad(prediction-all)+adam",
    "stablegrad(prediction-global)+adam",
    "stablegrad+adam",
    "stablegrad(geometric_mean)+adam",
    "adamw",
    "lamb",
    "sgd-momentum",
    "stablegrad+sgd-momentum",
)
# What the paper's variant is compared with, one line each (see `judged_pairs`):
# its baselines, the output-layer reference and its global (one-factor) ablation.
PAPER_BASELINES = (
    "adam",
    "adam+decay",
    "adam+decay(1%)",
    "adam+warmup+decay",
    "agc+adam",
    "stablegrad+adam",
    "stablegrad(prediction-global)+adam",
    "stablegrad(prediction)+adam+decay",  # does the schedule add to it?
)
# The references that need no update argument (the candidates for
# `stablegrad()`'s default), each against the default's ("output").
DEFAULT = "stablegrad+adam"
NO_ARGUMENT = ("stablegrad(geometric_mean)+adam",)
BETTER = results.BETTER


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", type=pathlib.Path, default=results.RESULTS)
    parser.add_argument("--outdir", type=pathlib.Path, default=None)
    parser.add_argument("--tune-seed", type=int, default=results.TUNE_SEED)
    parser.add_argument("--tune-depth", type=int, default=results.TUNE_DEPTH)
    mdtables.page_arguments(parser, "depth_sweep.md", "the tables")
    return parser.parse_args(argv)


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
        tuned = [r for r in self.runs_of(problem, init, optimizer) if self._tuning(r)]
        return sorted(set(r["lr"] for r in tuned))

    def _tuning(self, row) -> bool:
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
            if not self._tuning(r)
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
            if self._tuning(r)
        ]
        return sum(r["final_rel_l2"] < results.TRAINED for r in runs), len(runs)


def _num(value: float) -> str:
    """An error for a table; a diverged run (infinite or NaN) reads "div"."""
    if math.isinf(value) or math.isnan(value):
        return "div"
    return f"{value:.2g}" if value < 0.01 or value >= 10 else f"{value:.3f}"


def _cell_text(summary: dict | None, full: bool) -> str:
    """median (trained/seeds), and with `full` the [min, max] range and the lr."""
    if summary is None or not summary["n"]:
        return "–"
    text = _num(summary["median"])
    if full:
        text += (
            f" [{_num(summary['min'])}, {_num(summary['max'])}]"
            f" @{results.lr_text(summary['lr'])}{summary['edge']}"
        )
    return text + f" ({summary['trained']}/{summary['n']})"


def provenance(sweep: Sweep) -> str:
    """Which grid ran where: devices, dates, commits, runs."""
    by_device = collections.defaultdict(list)
    for r in sweep.rows:
        by_device[r["device"]].append(r)
    parts = []
    for device, rows in by_device.items():
        dates = sorted(set(r["date"] for r in rows))
        commits = sorted(set(r["git_commit"] for r in rows))
        span = dates[0] if len(dates) == 1 else f"{dates[0]} to {dates[-1]}"
        parts.append(
            f"{len(rows)} runs on {device}, {span}, commit(s) {', '.join(commits)}"
        )
    return "; ".join(parts)


def setting(sweep: Sweep) -> str:
    """The training setting, from the rows (several values joined by "/")."""
    values = lambda name: "/".join(
        str(v) for v in sorted(set(r[name] for r in sweep.rows))
    )
    weights = ", ".join(
        f"{p} {results.select(sweep.rows, problem=p)[0]['boundary_weight']:g}"
        for p in sweep.problems
    )
    return (
        f"{values('activation')} MLPs of width {values('width')}, "
        f"{values('steps')} steps of {values('num_interior')} interior "
        f"+ {values('num_boundary')} boundary points (Burgers: as many initial "
        f"points again; boundary weight: {weights}), depths "
        f"{', '.join(map(str, sweep.depths))}, seeds "
        f"{', '.join(map(str, sweep.seeds))}"
    )


def full_tables(sweep: Sweep) -> str:
    """Every cell, both protocols and the grid reliability, as markdown."""
    lines = [
        "# Deep-PINN depth sweep: every cell",
        "",
        "Generated by `python benchmarks/pinn_depth_sweep_report.py` from "
        f"`pinn_depth_sweep.csv`. {setting(sweep)}. {provenance(sweep)}.",
        "",
        "Cells: median final relative L2 error on the test grid over seeds "
        f"{', '.join(map(str, sweep.seeds))} [min, max] @ learning rate (↑/↓: "
        f"the top/bottom of the grid) (seeds with error < {results.TRAINED} / "
        f"seeds run; div: diverged). `tuned`: the lr with the lowest final "
        f"validation error on seed {sweep.tune_seed} at that depth; `fixed`: the "
        f"one chosen that way at depth {sweep.tune_depth}, kept at every depth. "
        "Loss values in the CSV are means over the last logging interval.",
    ]
    header = ["optimizer", *(f"depth {d}" for d in sweep.depths)]
    for problem in sweep.problems:
        lines += ["", f"## {problem}"]
        for init in sweep.inits:
            ran = sweep.ran(problem, init, in_headline_order(sweep.optimizers))
            for protocol in results.PROTOCOLS:
                body = [
                    [
                        opt,
                        *(
                            _cell_text(
                                sweep.summary(protocol, problem, init, opt, d), True
                            )
                            for d in sweep.depths
                        ),
                    ]
                    for opt in ran
                ]
                lines += [
                    "",
                    f"### {init} init, {protocol} lr",
                    "",
                    *mdtables.table(header, body),
                ]
            body = []
            for opt in ran:
                counts = [
                    sweep.grid_trained(problem, init, opt, d) for d in sweep.depths
                ]
                body.append([opt, *(f"{k}/{n}" if n else "–" for k, n in counts)])
            lines += [
                "",
                f"### {init} init: learning-rate grid points that train "
                f"(seed {sweep.tune_seed})",
                "",
                *mdtables.table(header, body),
            ]
    return "\n".join(lines) + "\n"


def base_of(optimizer: str) -> str | None:
    """``stablegrad(...)+adam`` -> ``adam``; None for a non-StableGrad name."""
    head, plus, base = optimizer.partition("+")
    return base if plus and head.startswith("stablegrad") else None


def in_headline_order(optimizers: Sequence[str]) -> list[str]:
    """`optimizers` in `HEADLINE` order, any others after them as given."""
    known = [o for o in HEADLINE if o in optimizers]
    return known + [o for o in optimizers if o not in known]


def judged_pairs(optimizers: Sequence[str]) -> list[tuple[str, str]]:
    """The (ours, theirs) comparisons among `optimizers`, the paper's first.

    The paper's variant against each of `PAPER_BASELINES`, then each StableGrad
    variant against its base optimizer (`base_of`: the +decay variant against
    adam+decay), in `HEADLINE` order, then each of `NO_ARGUMENT` against the
    default reference; only pairs where both were run.
    """
    pairs = [(PAPER, base) for base in PAPER_BASELINES]
    pairs += [(o, base_of(o)) for o in in_headline_order(optimizers)]
    pairs += [(o, DEFAULT) for o in NO_ARGUMENT]
    return [
        (ours, theirs)
        for ours, theirs in dict.fromkeys(pairs)
        if ours in optimizers and theirs in optimizers
    ]


PROTOCOL_NAMES = {"tuned": "lr per depth", "fixed": "one lr"}


def _pair(sweep: Sweep, protocol, problem, depth, ours, theirs) -> tuple | None:
    """Two (init, optimizer) summaries of one problem and depth, both complete."""
    found = [sweep.summary(protocol, problem, *side, depth) for side in (ours, theirs)]
    if all(f and f["n"] == len(sweep.seeds) for f in found):
        return tuple(found)
    return None


def paired_cells(sweep: Sweep, protocol: str, opt: str, base: str) -> list[tuple]:
    """(problem, init, depth, ours, theirs) where both have every reported seed."""
    return [
        (problem, init, depth, *pair)
        for problem in sweep.problems
        for init in sweep.inits
        for depth in sweep.depths
        if (pair := _pair(sweep, protocol, problem, depth, (init, opt), (init, base)))
    ]


def init_comparison(sweep: Sweep, shown: Sequence[str], ours: str, usual: str):
    """One sentence: the activation-aware init against the usual one, per optimizer."""
    parts = []
    for opt in shown:
        cells = [
            (problem, ours, depth, *pair)
            for problem in sweep.problems
            for depth in sweep.depths
            if (
                pair := _pair(sweep, "tuned", problem, depth, (ours, opt), (usual, opt))
            )
        ]
        if not cells:
            continue
        total = [0, 0, 0]
        for cell in cells:
            total[_verdict(cell[3], cell[4])] += 1
        per_problem = ", ".join(
            f"{problem} {_geo_mean_ratio([c for c in cells if c[0] == problem]):.2f}"
            for problem in dict.fromkeys(c[0] for c in cells)
        )
        parts.append(
            f"{opt}: better in {total[0]}, the same in {total[1]}, worse in "
            f"{total[2]} of {len(cells)} problem x depth cells (geometric-mean error "
            f"ratio by problem: {per_problem})"
        )
    if not parts:
        return None
    return (
        f"Initialisation, {ours} against {usual} (same optimizer, lr per depth; "
        "ratio below 1: the " + ours + " init better): " + "; ".join(parts) + "."
    )


def _verdict(ours: dict, theirs: dict) -> int:
    """0 better, 1 same, 2 worse, by the ratio of median errors."""
    return results.judge(ours["median"], theirs["median"])


def _geo_mean_ratio(cells: Sequence[tuple]) -> float:
    return results.geo_mean_ratio([(c[3]["median"], c[4]["median"]) for c in cells])


def comparisons(sweep: Sweep) -> list[str]:
    """Each of `judged_pairs` per depth (a table), then one line per pair.

    Only cells where both have every reported seed count; both protocols.
    """
    header = ["comparison", *(f"depth {d}" for d in sweep.depths), "all"]
    body, lines = [], []
    for opt, base in judged_pairs(sweep.optimizers):
        parts = []
        for protocol in results.PROTOCOLS:
            cells = paired_cells(sweep, protocol, opt, base)
            if not cells:
                continue
            verdicts = {d: [0, 0, 0] for d in sweep.depths}  # better, same, worse
            trained = {d: [0, 0, 0] for d in sweep.depths}  # ours, base, seeds
            for _, _, depth, ours, theirs in cells:
                verdicts[depth][_verdict(ours, theirs)] += 1
                trained[depth][0] += ours["trained"]
                trained[depth][1] += theirs["trained"]
                trained[depth][2] += ours["n"]
            total = [sum(v[i] for v in verdicts.values()) for i in range(3)]
            won = [sum(v[i] for v in trained.values()) for i in range(3)]
            name = PROTOCOL_NAMES[protocol]
            body.append(
                [
                    f"{opt} vs {base}, {name}: better / same / worse",
                    *("/".join(map(str, verdicts[d])) for d in sweep.depths),
                    "/".join(map(str, total)),
                ]
            )
            body.append(
                [
                    f"{name}: runs that train (of seeds), first vs second",
                    *(
                        f"{k} vs {m} (of {n})" if n else "–"
                        for k, m, n in (trained[d] for d in sweep.depths)
                    ),
                    f"{won[0]} vs {won[1]} (of {won[2]})",
                ]
            )
            parts.append(
                f"{' / '.join(map(str, total))} of {len(cells)} cells with "
                f"{name} (ratio {_geo_mean_ratio(cells):.2f})"
            )
        if parts:
            lines.append(
                f"* **{opt} vs {base}: better / same / worse** in "
                + ", in ".join(parts)
                + "."
            )
    if not body:
        return []
    return [
        *mdtables.table(header, body),
        "",
        "Per comparison, over the problem x init x depth cells where both have "
        "every reported seed: better where the first's median error is more than "
        f"{round((1 - BETTER) * 100)}% lower than the second's, worse where it is "
        f"more than {round((1 / BETTER - 1) * 100)}% higher, and the geometric "
        "mean of the ratio of median errors (below 1: the first better).",
        "",
        *lines,
    ]


def where(sweep: Sweep, opt: str, base: str) -> list[str]:
    """The cells (lr per depth) where ``opt`` beats ``base`` and where it loses."""
    cells = paired_cells(sweep, "tuned", opt, base)
    lists = {0: [], 2: []}
    for problem, init, depth, ours, theirs in cells:
        verdict = _verdict(ours, theirs)
        if verdict in lists:
            lists[verdict].append(
                f"{problem} {init} depth {depth} ({_num(ours['median'])} vs "
                f"{_num(theirs['median'])})"
            )
    return [
        f"* {word} than {base} (lr per depth; {opt}'s median error vs {base}'s): "
        + ("; ".join(lists[key]) if lists[key] else "nowhere")
        + "."
        for key, word in ((0, "Better"), (2, "Worse"))
    ]


def best_depths(sweep: Sweep, shown: Sequence[str]) -> list[str]:
    """Per problem and init: the depth with each optimizer's lowest median error.

    The paper's second claim is that StableGrad makes deeper PINNs reliable: if
    it did, its best depth would move deeper and its deep errors would drop.
    Only problems and inits where every optimizer shown has every depth with
    every reported seed get a row; none: no table.
    """
    body = []
    for problem in sweep.problems:
        for init in sweep.inits:
            row = [problem, init]
            for opt in shown:
                found = [
                    (s["median"], d)
                    for d in sweep.depths
                    if (s := sweep.summary("tuned", problem, init, opt, d))
                    and s["n"] == len(sweep.seeds)
                ]
                if len(found) < len(sweep.depths):
                    break
                error, depth = min(found, key=lambda f: results.error_ratio(f[0], 1.0))
                row.append(f"{depth} ({_num(error)})")
            else:
                body.append(row)
    return mdtables.table(["problem", "init", *shown], body) if body else []


def claims(sweep: Sweep, opt: str, base: str) -> list[str]:
    """The paper's two claims, each checked against the complete cells."""
    cells = paired_cells(sweep, "tuned", opt, base)
    if not cells:
        return []
    total = [0, 0, 0]
    for cell in cells:
        total[_verdict(cell[3], cell[4])] += 1
    geo = _geo_mean_ratio(cells)
    if total[0] > total[2] and geo < BETTER:
        first = "holds here"
    elif total[2] > total[0] and geo > 1 / BETTER:
        first = "does not hold here: StableGrad is more often worse"
    else:
        first = "does not hold here: neither is consistently better"
    deep = [c for c in cells if c[2] >= sweep.depths[-1] // 2]
    ours = sum(c[3]["trained"] for c in deep)
    theirs = sum(c[4]["trained"] for c in deep)
    seeds = sum(c[3]["n"] for c in deep)
    depths = sorted({c[2] for c in deep})
    if not deep:
        second = "no complete cell is that deep, so nothing says which trains more"
    elif ours > theirs:
        second = f"StableGrad trains more of them ({ours} against {theirs})"
    elif ours < theirs:
        second = f"StableGrad trains fewer of them ({ours} against {theirs})"
    elif ours:
        second = f"both train as many ({ours})"
    else:
        second = "neither trains any"
    if deep:
        second = (
            f"of {seeds} runs at depths {' and '.join(map(str, depths))}, "
            f"{second} to an error below {results.TRAINED}"
        )
    else:
        second = f"at depths {sweep.depths[-1] // 2} and above, {second}"
    table = best_depths(sweep, [base, opt])
    if table:
        table = [
            " The best depth per problem and init (median error there; lr per "
            "depth; where both have every depth):",
            "",
            *table,
        ]
    else:
        table = [" No problem and init has every depth complete for both."]
    return [
        f"**The paper's claims, {opt} against {base}** (lr per depth, "
        f"{len(cells)} complete cells):",
        "",
        f"1. *Better accuracy at matched depth* {first} (better in {total[0]} "
        f"cells, worse in {total[2]}, the same in {total[1]}; geometric-mean "
        f"error ratio {geo:.2f}).",
        f"2. *Deeper PINNs train reliably*: {second}.{table[0]}",
        *table[1:],
        "",
        *where(sweep, opt, base),
    ]


def every_claims(sweep: Sweep) -> list[str]:
    """`claims` for each StableGrad variant against its base, the paper's first."""
    lines = []
    for opt in in_headline_order(sweep.optimizers):
        base = base_of(opt)
        if base in sweep.optimizers and (found := claims(sweep, opt, base)):
            lines += ["", *found]
    return lines


def regime(sweep: Sweep) -> str | None:
    """Where Adam's eps stands against the per-layer gradient std Adam sees.

    Plain Adam's runs at their tuned learning rate that trained at all (error
    below 0.9: not collapsed to u = 0); the statistic is the smallest
    per-layer weight-gradient std at the last step.
    """
    stds = []
    for problem in sweep.problems:
        for init in sweep.inits:
            for depth in sweep.depths:
                lr = sweep.lr("tuned", problem, init, "adam", depth)
                if lr is None:
                    continue
                runs = results.select(
                    sweep.runs_of(problem, init, "adam"), depth=depth, lr=lr
                )
                stds += [
                    r["min_layer_grad_std"] for r in runs if r["final_rel_l2"] < 0.9
                ]
    if not stds:
        return None
    stds.sort()
    below = sum(v < 1e-6 for v in stds)
    return (
        f"Adam's regime: in {len(stds)} plain-Adam runs at their tuned learning "
        "rate (collapsed runs left out), the smallest per-layer gradient std at "
        f"the last step ranges from {_num(stds[0])} to {_num(stds[-1])} (median "
        f"{_num(stds[len(stds) // 2])}); {below} are below 1e-6, near Adam's eps "
        "(1e-8). Where it is far above eps, Adam undoes a per-layer rescale that "
        "is constant in time, and StableGrad + Adam differs from Adam only through "
        "the factors' changes over time."
    )


def coverage(sweep: Sweep) -> str:
    """How many started cells have every reported seed under both protocols."""
    started = {
        (r["problem"], r["init"], r["optimizer"], r["depth"]) for r in sweep.rows
    }
    complete = sum(
        all(
            (s := sweep.summary(protocol, *cell)) and s["n"] == len(sweep.seeds)
            for protocol in results.PROTOCOLS
        )
        for cell in started
    )
    return (
        f"{complete} of the {len(started)} problem x init x optimizer x depth "
        "cells started so far have every reported seed under both protocols"
    )


def _protocol_table(sweep: Sweep, protocol: str, shown: Sequence[str]) -> list[str]:
    header = ["problem", "init", "optimizer", *(f"depth {d}" for d in sweep.depths)]
    body = [
        [
            problem,
            init,
            opt,
            *(
                _cell_text(sweep.summary(protocol, problem, init, opt, d), False)
                for d in sweep.depths
            ),
        ]
        for problem in sweep.problems
        for init in sweep.inits
        for opt in sweep.ran(problem, init, shown)
    ]
    return mdtables.table(header, body)


def page(
    sweep: Sweep,
    figures: Sequence[pathlib.Path],
    figure_notes: Sequence[str],
    csv: pathlib.Path,
    path: pathlib.Path,
) -> str:
    """The docs page "Results: the depth sweep"; every number from the CSV.

    `path` is where the page goes: links to the CSV and the figures are
    relative to it.
    """
    shown = in_headline_order(sweep.optimizers)
    seeds = ", ".join(map(str, sweep.seeds))
    tables = csv.with_name("pinn_depth_sweep.md")
    lines = [
        TITLE,
        "",
        *mdtables.generated(SCRIPT, [mdtables.repo_path(csv)]),
        "",
        f"{setting(sweep)}; {len(sweep.rows)} runs in "
        f"[`{csv.name}`]({mdtables.link(csv, path)}) ({provenance(sweep)}); "
        f"{coverage(sweep)}.",
        "",
        f"Cells: median final relative L2 error over seeds {seeds} (seed "
        f"{sweep.tune_seed} only picks learning rates), and in parentheses how "
        f"many of those seeds end below {results.TRAINED}. Every cell with its "
        f"range, learning rate and grid counts: `{mdtables.repo_path(tables)}`.",
        "",
        "## Learning rate tuned per depth",
        "",
        *_protocol_table(sweep, "tuned", shown),
        "",
        f"## One learning rate per optimizer, chosen at depth {sweep.tune_depth}",
        "",
        *_protocol_table(sweep, "fixed", shown),
        "",
        "## Comparisons",
        "",
        *comparisons(sweep),
    ]
    lines += every_claims(sweep)
    notes = [
        init_comparison(sweep, shown, "critical", "glorot"),
        regime(sweep),
        *figure_notes,
    ]
    lines += ["", "## Initialisation, Adam's regime and the figures"]
    for note in notes:
        if note:
            lines += ["", note]
    lines += [""] + [f"![{f.name}]({mdtables.link(f, path)})" for f in figures]
    return "\n".join(lines) + "\n"


def plot(sweep: Sweep, problem: str, path: pathlib.Path) -> None:
    """Median error (min-max bars) against depth: protocols x initialisations."""
    plt = _pyplot()

    fig, axes = plt.subplots(
        len(results.PROTOCOLS),
        len(sweep.inits),
        figsize=(5.5 * len(sweep.inits), 4 * len(results.PROTOCOLS)),
        squeeze=False,
        sharey=True,
    )
    for row, protocol in enumerate(results.PROTOCOLS):
        for col, init in enumerate(sweep.inits):
            ax = axes[row, col]
            for color, opt in enumerate(sweep.optimizers):
                points = [
                    (d, s)
                    for d in sweep.depths
                    if (s := sweep.summary(protocol, problem, init, opt, d)) and s["n"]
                ]
                if not points:
                    continue
                depths = [d for d, _ in points]
                clip = lambda x: min(x, 10.0)
                median = [clip(s["median"]) for _, s in points]
                low = [
                    m - clip(s["min"]) for m, (_, s) in zip(median, points, strict=True)
                ]
                high = [
                    clip(s["max"]) - m for m, (_, s) in zip(median, points, strict=True)
                ]
                ax.errorbar(
                    depths,
                    median,
                    yerr=[low, high],
                    marker="o",
                    capsize=3,
                    label=opt,
                    color=f"C{color % 10}",  # the same colour in every panel
                )
            ax.axhline(results.TRAINED, color="grey", lw=0.8, ls=":")
            ax.set(
                xscale="log",
                yscale="log",
                xlabel="hidden layers",
                title=f"{problem}, {init} init, {protocol} lr",
            )
            ax.set_xticks(sweep.depths, [str(d) for d in sweep.depths])
            ax.minorticks_off()
            if col == 0:
                ax.set_ylabel("final relative L2 (median, min-max)")
    # One legend for every optimizer drawn in any panel.
    labelled = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            labelled.setdefault(label, handle)
    order = [o for o in sweep.optimizers if o in labelled]
    axes[0, 0].legend([labelled[o] for o in order], order, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


HISTORY = ("grad_imbalance", "rel_l2")  # what the history figure draws
# What the reference figure draws: the prediction reference's "data" reading
# (logged by every run with a prediction reference, whichever reading it steps
# with) and the loss.
REFERENCE = ("reference_scale/data", "loss")


def _series(record: dict, name: str) -> list | None:
    """``record[name]``, where "a/b" reads ``record["a"]["b"]``; None if absent."""
    for part in name.split("/"):
        if not isinstance(record, dict) or part not in record:
            return None
        record = record[part]
    return record


def history_at_depth(
    sweep: Sweep, history: dict, problem, init, opt, depth, names=HISTORY
) -> dict | None:
    """Per-step medians of `names` over the reported seeds at the tuned lr.

    Only runs whose history holds every one of `names` count; None if none does.
    """
    lr = sweep.lr("tuned", problem, init, opt, depth)
    if lr is None:
        return None
    runs = []
    for r in results.select(sweep.runs_of(problem, init, opt), depth=depth, lr=lr):
        record = history.get(results.run_key(r))
        if sweep._tuning(r) or record is None:
            continue
        found = {name: _series(record, name) for name in names}
        if all(v is not None for v in found.values()):
            runs.append({"step": record["step"], **found})
    if not runs:
        return None
    steps = runs[0]["step"]
    median = lambda name: [
        statistics.median(run[name][i] for run in runs) for i in range(len(steps))
    ]
    return {
        "step": steps,
        **{name: median(name) for name in names},
        "seeds": len(runs),
    }


def curves(sweep: Sweep, history: dict, depth: int, names=HISTORY) -> dict[tuple, dict]:
    """(problem, init, optimizer) -> `history_at_depth`, where there is one."""
    out = {}
    for problem in sweep.problems:
        for init in sweep.inits:
            for opt in sweep.optimizers:
                curve = history_at_depth(
                    sweep, history, problem, init, opt, depth, names
                )
                if curve is not None:
                    out[problem, init, opt] = curve
    return out


def history_note(sweep: Sweep, history: dict, depth: int) -> str:
    """What the history figure shows, and which runs have no per-step history."""
    missing = collections.Counter(
        (r["problem"], r["init"], r["optimizer"])
        for r in sweep.rows
        if results.run_key(r) not in history
    )
    text = (
        f"`pinn_depth_sweep_history.png`: per-step medians at depth {depth} over "
        "the reported seeds at the tuned learning rate (solid: the critical "
        f"init; dashed: the others). {len(sweep.rows) - sum(missing.values())} of "
        f"{len(sweep.rows)} runs have a per-step history in "
        "`pinn_depth_sweep_history.jsonl`"
    )
    if not missing:
        return text + "."
    groups = "; ".join(f"{' '.join(g)}: {n}" for g, n in sorted(missing.items()))
    return (
        f"{text}; runs without one (made before it was logged) are not drawn "
        f"({groups})."
    )


def reference_note(found: dict, depth: int) -> str:
    """What the reference figure shows (`found`: `curves` of `REFERENCE`)."""
    runs = sum(curve["seeds"] for curve in found.values())
    return (
        "`pinn_depth_sweep_reference.png`: the prediction reference (the std "
        "each layer's gradient is rescaled to), its data reading (the std of the "
        "loss gradient with respect to the network's output at the boundary and "
        "initial points; logged by every run with a prediction reference, "
        "whichever reading it steps with), beside the loss: per-step medians at "
        f"depth {depth} over the reported seeds at the tuned learning rate "
        f"({runs} runs in {len(found)} problem x init x optimizer groups)."
    )


def plot_curves(
    sweep: Sweep, found: dict, depth: int, panels: Sequence[tuple], path: pathlib.Path
) -> None:
    """Per-step curves (`curves`) at one depth: a row per problem drawn.

    `panels`: one (history name, y label, title) per column. Solid lines: the
    critical init; dashed: the others.
    """
    plt = _pyplot()
    problems = [p for p in sweep.problems if any(k[0] == p for k in found)]
    fig, axes = plt.subplots(
        len(problems),
        len(panels),
        figsize=(5.5 * len(panels), 3.6 * len(problems)),
        squeeze=False,
    )
    for row, problem in enumerate(problems):
        for color, opt in enumerate(sweep.optimizers):
            for init in sweep.inits:
                curve = found.get((problem, init, opt))
                if curve is None:
                    continue
                label = f"{opt}, {init} ({curve['seeds']} seeds)"
                for col, (name, _, _) in enumerate(panels):
                    axes[row, col].plot(
                        curve["step"],
                        curve[name],
                        ls="-" if init == "critical" else "--",
                        color=f"C{color % 10}",
                        label=label,
                    )
        for col, (_, ylabel, title) in enumerate(panels):
            axes[row, col].set(
                yscale="log",
                xlabel="step",
                ylabel=ylabel,
                title=f"{problem}, depth {depth}: {title}",
            )
        axes[row, -1].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_history(sweep: Sweep, found: dict, depth: int, path: pathlib.Path) -> None:
    """Gradient imbalance and test error over training at one depth."""
    panels = (
        (
            "grad_imbalance",
            "per-layer grad std, max / min",
            "gradient imbalance (median)",
        ),
        ("rel_l2", "relative L2 (median)", "test error at the tuned lr"),
    )
    plot_curves(sweep, found, depth, panels, path)


def plot_reference(sweep: Sweep, found: dict, depth: int, path: pathlib.Path) -> None:
    """The prediction reference (its "data" reading) and the loss over training."""
    panels = (
        (REFERENCE[0], "std of dL/du at the data points", "reference (median)"),
        (REFERENCE[1], "loss (median)", "loss at the tuned lr"),
    )
    plot_curves(sweep, found, depth, panels, path)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    sweep = Sweep(results.read_rows(args.results), args.tune_seed, args.tune_depth)
    outdir = args.outdir or args.results.parent
    history = results.read_history(args.results)
    # The figures by file name (each drawn by a function of its path) and what
    # the page says of those beyond the per-problem ones.
    drawings = {
        f"pinn_depth_sweep_{p}.png": functools.partial(plot, sweep, p)
        for p in sweep.problems
    }
    notes = []
    deepest = sweep.depths[-1]
    if found := curves(sweep, history, deepest):
        drawings["pinn_depth_sweep_history.png"] = functools.partial(
            plot_history, sweep, found, deepest
        )
        notes.append(history_note(sweep, history, deepest))
    # The reference at the depth that picks the fixed protocol's lr.
    if found := curves(sweep, history, sweep.tune_depth, REFERENCE):
        drawings["pinn_depth_sweep_reference.png"] = functools.partial(
            plot_reference, sweep, found, sweep.tune_depth
        )
        notes.append(reference_note(found, sweep.tune_depth))
    figures = [outdir / name for name in drawings]
    tables_path = outdir / "pinn_depth_sweep.md"
    outputs = {
        args.page: page(sweep, figures, notes, args.results, args.page),
        tables_path: full_tables(sweep),
    }
    if args.check:
        return mdtables.up_to_date(outputs, SCRIPT, args.results)
    mdtables.write(outputs)
    for name, draw in drawings.items():
        draw(outdir / name)
    print(f"wrote {tables_path}, {len(figures)} figures, {args.page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
