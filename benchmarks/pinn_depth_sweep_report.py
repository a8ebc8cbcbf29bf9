"""The depth sweep's results page, full tables and figures, from its CSV.

  python benchmarks/pinn_depth_sweep_report.py            # write all
  python benchmarks/pinn_depth_sweep_report.py --check    # all up to date?

Writes ``docs/results/depth_sweep.md`` (a table per problem and protocol, the
comparisons, the paper's claims, the figures) and, beside the CSV,
``pinn_depth_sweep.md`` (every cell with its range, lr and grid counts) and the
figures (`pinn_depth_sweep_figures`); cells as `pinn_depth_sweep_results.Sweep`.
"""

from __future__ import annotations

import itertools
import math
import pathlib
import sys
from collections.abc import Sequence
from operator import itemgetter

import mdtables
import pinn_depth_sweep_figures as figures
import pinn_depth_sweep_results as results
import recipes
from pinn_depth_sweep_results import Sweep, num

SCRIPT = "benchmarks/pinn_depth_sweep_report.py"
TITLE = "# Results: the depth sweep"
PAPER = "stablegrad(prediction)+adam"  # the paper's StableGrad
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
PROTOCOL_NAMES = {"tuned": "lr per depth", "fixed": "one lr"}
# The recipe each is judged against (`recipes.Recipe.base`; None: not judged).
BASES = {name: recipe.base for name, recipe in recipes.RECIPES.items()}


def in_headline_order(optimizers: Sequence[str]) -> list[str]:
    """`optimizers` in the registry's order (`recipes.RECIPES`), others after."""
    rank = {name: i for i, name in enumerate(recipes.RECIPES)}
    return sorted(optimizers, key=lambda o: rank.get(o, len(rank)))


def judged_pairs(optimizers: Sequence[str]) -> list[tuple[str, str]]:
    """The (ours, theirs) pairs both run: `PAPER` against `PAPER_BASELINES`, each
    optimizer against its base (`BASES`), `NO_ARGUMENT` against `DEFAULT`."""
    pairs = [(PAPER, base) for base in PAPER_BASELINES]
    pairs += [(o, BASES.get(o)) for o in in_headline_order(optimizers)]
    pairs += [(o, DEFAULT) for o in NO_ARGUMENT]
    return [p for p in dict.fromkeys(pairs) if set(p) <= set(optimizers)]  # both run


def provenance(sweep: Sweep) -> str:
    """Where the runs ran: per device, the runs, dates and commits (first to last)."""
    parts = []
    for device, rows in mdtables.group(sweep.rows, itemgetter("device")).items():
        span = mdtables.span(r["date"] for r in rows)
        # Rows are appended as runs end: the file's order is the order run.
        first, last = rows[0]["git_commit"], rows[-1]["git_commit"]
        commits = f"commit {first}" if first == last else f"commits {first} to {last}"
        parts.append(f"{len(rows)} runs on {device}, {span}, {commits}")
    return "; ".join(parts)


def listed(values) -> str:
    """ "a, b, c"."""
    return ", ".join(map(str, values))


def setting(sweep: Sweep) -> str:
    """The training setting (one value of each column: `Sweep` checks)."""
    row = sweep.rows[0]
    weights = listed(
        f"{p} {results.select(sweep.rows, problem=p)[0]['boundary_weight']:g}"
        for p in sweep.problems
    )
    return (
        f"{row['activation']} MLPs of width {row['width']}, {row['steps']} steps "
        f"of {row['num_interior']} interior + {row['num_boundary']} boundary "
        f"points (Burgers: as many initial points again; boundary weight: "
        f"{weights}), depths {listed(sweep.depths)}, seeds {listed(sweep.seeds)}"
    )


def coverage(sweep: Sweep) -> str:
    """How many started cells have every reported seed under both protocols."""
    started = set(map(itemgetter("problem", "init", "optimizer", "depth"), sweep.rows))
    complete = sum(
        all(sweep.complete(protocol, *cell) for protocol in results.PROTOCOLS)
        for cell in started
    )
    return (
        f"{complete} of the {len(started)} problem x init x optimizer x depth "
        "cells started so far have every reported seed under both protocols"
    )


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


def full_tables(sweep: Sweep) -> str:
    """Every cell, both protocols and the grid reliability, as markdown."""
    lines = [
        "# Deep-PINN depth sweep: every cell",
        "",
        f"Generated by `python {SCRIPT}` from "
        f"`pinn_depth_sweep.csv`. {setting(sweep)}. {provenance(sweep)}.",
        "",
        "Cells: median final relative L2 error on the test grid over seeds "
        f"{listed(sweep.seeds)} [min, max] @ learning rate (↑/↓: the top/bottom "
        f"of the grid) (seeds with error < {results.TRAINED} / seeds run; div: "
        "diverged). `tuned`: the lr with the lowest final validation error on "
        f"seed {sweep.tune_seed} at that depth; `fixed`: the one chosen that way "
        f"at depth {sweep.tune_depth}, kept at every depth.",
    ]
    header = ["optimizer", *(f"depth {d}" for d in sweep.depths)]
    shown = in_headline_order(sweep.optimizers)

    def at_lr_of(protocol):  # a cell's text at the protocol's learning rate
        return lambda *cell: cell_text(sweep.summary(protocol, *cell), True)

    def grid(*cell) -> str:  # the grid points that train on the tuning seed
        trained, runs = sweep.grid_trained(*cell)
        return f"{trained}/{runs}" if runs else "–"

    for problem in sweep.problems:
        lines += ["", f"## {problem}"]
        for init in sweep.inits:
            tables = {f"{init} init, {p} lr": at_lr_of(p) for p in results.PROTOCOLS}
            trains = f"{init} init: learning-rate grid points that train"
            tables[f"{trains} (seed {sweep.tune_seed})"] = grid
            for heading, text in tables.items():
                body = [
                    [o, *(text(problem, init, o, d) for d in sweep.depths)]
                    for o in sweep.ran(problem, init, shown)
                ]
                lines += ["", f"### {heading}", "", *mdtables.table(header, body)]
    return "\n".join(lines) + "\n"


def problem_table(sweep: Sweep, protocol, problem, shown: Sequence[str]) -> list[str]:
    """One problem's cells under one protocol, a row per init and optimizer run;
    the lowest median of each depth in bold (ties: each; never a diverged one)."""
    rows = {
        (init, opt): [
            sweep.summary(protocol, problem, init, opt, d) for d in sweep.depths
        ]
        for init in sweep.inits
        for opt in sweep.ran(problem, init, shown)
    }
    finite = lambda c: [s["median"] for s in c if s and math.isfinite(s["median"])]
    best = [min(finite(c), default=None) for c in zip(*rows.values(), strict=True)]

    def bold(s, lowest):
        text = cell_text(s, False)
        return f"**{text}**" if s and s["median"] == lowest else text

    body = [[init, opt, *map(bold, found, best)] for (init, opt), found in rows.items()]
    header = ["init", "optimizer", *(f"depth {d}" for d in sweep.depths)]
    return mdtables.table(header, body)


def protocol_tables(sweep: Sweep, protocol: str, shown: Sequence[str]) -> list[str]:
    """`problem_table` for each problem, each under its own heading."""
    lines = []
    for problem in sweep.problems:
        table = problem_table(sweep, protocol, problem, shown)
        lines += ["", f"### {problem}", "", *table]
    return lines


def comparisons(sweep: Sweep) -> list[str]:
    """One line per `judged_pairs`, then a table per pair: its verdicts per depth
    under both protocols, over the cells where both have every reported seed."""
    lines, tables, keys = [], [], [*sweep.depths, "all"]
    for opt, base in judged_pairs(sweep.optimizers):
        parts, header, body = [], ["depth"], [[str(key)] for key in keys]
        for protocol, name in PROTOCOL_NAMES.items():
            if not (cells := results.paired_cells(sweep, protocol, opt, base)):
                continue
            parts.append(
                f"{' / '.join(map(str, results.counts(cells)))} of {len(cells)} cells "
                f"with {name} (ratio {results.cells_ratio(cells):.2f})"
            )
            header += [name, "runs that train"]
            for row, key in zip(body, keys, strict=True):  # that depth, or all
                at = [cell for cell in cells if key in (cell[2], "all")]
                ours, theirs = (sum(cell[i]["trained"] for cell in at) for i in (3, 4))
                seeds = sum(cell[3]["n"] for cell in at)
                runs = f"{ours} vs {theirs} (of {seeds})" if seeds else "–"
                row += ["/".join(map(str, results.counts(at))), runs]
        if parts:
            lines.append(
                f"* **{opt} vs {base}: better / same / worse** in "
                f"{', in '.join(parts)}."
            )
            tables += ["", f"### {opt} vs {base}", "", *mdtables.table(header, body)]
    if not lines:
        return []
    return [
        "Per comparison, over the problem x init x depth cells where both have "
        f"every reported seed: {results.RULE}.",
        "",
        *lines,
        "",
        "Each comparison by depth (all: every depth) and protocol: its cells "
        f"better / the same / worse, and its runs that train (error below "
        f"{results.TRAINED}), the first's vs the second's (of the seeds in those "
        "cells).",
        *tables,
    ]


def where(cells: Sequence[tuple], opt: str, base: str) -> list[str]:
    """Where ``opt`` beats ``base`` and where it loses, of the `paired_cells`."""
    lists = {0: [], 1: [], 2: []}
    for problem, init, depth, ours, theirs in cells:
        a, b = ours["median"], theirs["median"]
        lists[results.judge(a, b)].append(
            f"{problem} {init} depth {depth} ({num(a)} vs {num(b)})"
        )
    return [
        f"* {word} than {base} (lr per depth; {opt}'s median error vs {base}'s): "
        f"{'; '.join(lists[key]) or 'nowhere'}."
        for key, word in ((0, "Better"), (2, "Worse"))
    ]


def best_depths(sweep: Sweep, shown: Sequence[str]) -> list[str]:
    """Per problem and init where each has every depth complete: the depth of each
    optimizer's lowest median error (the paper says StableGrad's is deeper)."""
    body = []
    for problem, init in itertools.product(sweep.problems, sweep.inits):
        row = [problem, init]
        for o in shown:
            at = {d: sweep.complete("tuned", problem, init, o, d) for d in sweep.depths}
            if not all(at.values()):
                break
            error = {d: results.error_ratio(s["median"], 1.0) for d, s in at.items()}
            depth = min(error, key=error.get)  # the shallowest of ties
            row.append(f"{depth} ({num(at[depth]['median'])})")
        else:
            body.append(row)
    return mdtables.table(["problem", "init", *shown], body) if body else []


def claims(sweep: Sweep, opt: str, base: str) -> list[str]:
    """The paper's two claims, each checked against the complete cells."""
    cells = results.paired_cells(sweep, "tuned", opt, base)
    if not cells:
        return []
    total, geo = results.counts(cells), results.cells_ratio(cells)
    if total[0] > total[2] and geo < results.BETTER:
        first = "holds here"
    elif total[2] > total[0] and geo > 1 / results.BETTER:
        first = "does not hold here: StableGrad is more often worse"
    else:
        first = "does not hold here: neither is consistently better"
    half = sweep.depths[-1] // 2
    deep = [c for c in cells if c[2] >= half]
    ours, theirs = (sum(c[i]["trained"] for c in deep) for i in (3, 4))
    if ours != theirs:
        more = "more" if ours > theirs else "fewer"
        second = f"StableGrad trains {more} of them ({ours} against {theirs})"
    else:
        second = f"both train as many ({ours})" if ours else "neither trains any"
    if deep:
        depths = " and ".join(map(str, sorted({c[2] for c in deep})))
        second = (
            f"of {sum(c[3]['n'] for c in deep)} runs at depths {depths}, "
            f"{second} to an error below {results.TRAINED}"
        )
    else:
        second = (
            f"at depths {half} and above, no complete cell is that deep, so "
            "nothing says which trains more"
        )
    table = best_depths(sweep, [base, opt])
    best = (
        " The best depth per problem and init (median error there; lr per depth; "
        "where both have every depth):"
        if table
        else " No problem and init has every depth complete for both."
    )
    return [
        f"**The paper's claims, {opt} against {base}** (lr per depth, "
        f"{len(cells)} complete cells):",
        "",
        f"1. *Better accuracy at matched depth* {first} (better in {total[0]} "
        f"cells, worse in {total[2]}, the same in {total[1]}; geometric-mean "
        f"error ratio {geo:.2f}).",
        f"2. *Deeper PINNs train reliably*: {second}.{best}",
        *(["", *table] if table else []),
        "",
        *where(cells, opt, base),
    ]


def every_claims(sweep: Sweep) -> list[str]:
    """`claims` for each StableGrad variant against its base, the paper's first."""
    lines = []
    for opt in in_headline_order(sweep.optimizers):
        base = BASES.get(opt)
        if base in sweep.optimizers and (found := claims(sweep, opt, base)):
            lines += ["", *found]
    return lines


def init_comparison(sweep: Sweep, shown: Sequence[str], ours: str, usual: str):
    """One sentence: the activation-aware init against the usual one, per optimizer."""
    parts = []
    for opt in shown:
        sides = ((ours, opt), (usual, opt))
        cells = [
            (problem, ours, depth, *found)
            for problem, depth in itertools.product(sweep.problems, sweep.depths)
            if (found := results.pair(sweep, "tuned", problem, depth, *sides))
        ]
        if not cells:
            continue
        total = results.counts(cells)
        per_problem = ", ".join(
            f"{p} {results.cells_ratio([c for c in cells if c[0] == p]):.2f}"
            for p in dict.fromkeys(c[0] for c in cells)
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
        f"ratio below 1: the {ours} init better): {'; '.join(parts)}."
    )


def regime(sweep: Sweep) -> str | None:
    """Adam's eps against the smallest per-layer gradient std at the last step, in
    plain Adam's runs at the tuned lr that did not collapse (error below 0.9)."""
    cells = itertools.product(sweep.problems, sweep.inits, sweep.depths)
    stds = sorted(
        r["min_layer_grad_std"]
        for problem, init, depth in cells
        if (lr := sweep.lr("tuned", problem, init, "adam", depth)) is not None
        for r in sweep.runs_of(problem, init, "adam", depth=depth, lr=lr)
        if r["final_rel_l2"] < 0.9
    )
    if not stds:
        return None
    return (
        f"Adam's regime: in {len(stds)} plain-Adam runs at their tuned learning "
        "rate (collapsed runs left out), the smallest per-layer gradient std at "
        f"the last step ranges from {num(stds[0])} to {num(stds[-1])} (median "
        f"{num(stds[len(stds) // 2])}); {sum(v < 1e-6 for v in stds)} are below "
        "1e-6, near Adam's eps (1e-8). Where it is far above eps, Adam undoes a "
        "per-layer rescale that is constant in time, and StableGrad + Adam "
        "differs from Adam only through the factors' changes over time."
    )


def page(sweep: Sweep, figures, figure_notes, csv, path: pathlib.Path) -> str:
    """The docs page, with the `figures` (paths) and the notes on them; links to
    them and to the `csv` are relative to the page's `path`."""
    shown = in_headline_order(sweep.optimizers)
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
        f"Cells: median final relative L2 error over seeds {listed(sweep.seeds)} (seed "
        f"{sweep.tune_seed} only picks learning rates), and in parentheses how "
        f"many of those seeds end below {results.TRAINED}; in bold, the lowest "
        "median of each depth in a problem's table. Every cell with its "
        f"range, learning rate and grid counts: `{mdtables.repo_path(tables)}`.",
        "",
        "## Learning rate tuned per depth",
        *protocol_tables(sweep, "tuned", shown),
        "",
        f"## One learning rate per optimizer, chosen at depth {sweep.tune_depth}",
        *protocol_tables(sweep, "fixed", shown),
        "",
        "## Comparisons",
        "",
        *comparisons(sweep),
    ]
    if found := every_claims(sweep):
        lines += ["", "## The paper's claims, per StableGrad variant", *found]
    notes = [
        init_comparison(sweep, shown, "critical", "glorot"),
        regime(sweep),
        *figure_notes,
    ]
    lines += ["", "## Initialisation, Adam's regime and the figures"]
    lines += [line for note in notes if note for line in ("", note)]
    lines += [""] + [f"![{f.name}]({mdtables.link(f, path)})" for f in figures]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = mdtables.parser(__doc__, results.RESULTS, "depth_sweep.md", "the tables")
    parser.add_argument("--outdir", type=pathlib.Path, default=None)
    parser.add_argument("--tune-seed", type=int, default=results.TUNE_SEED)
    parser.add_argument("--tune-depth", type=int, default=results.TUNE_DEPTH)
    args = parser.parse_args(argv)
    sweep = Sweep(results.read_rows(args.results), args.tune_seed, args.tune_depth)
    outdir = args.outdir or args.results.parent
    drawings, notes = figures.drawings(sweep, results.read_history(args.results))
    drawn = {outdir / name: draw for name, draw in drawings.items()}
    outputs = {
        args.page: page(sweep, list(drawn), notes, args.results, args.page),
        outdir / "pinn_depth_sweep.md": full_tables(sweep),
    }
    return mdtables.check_or_write(outputs, args.check, SCRIPT, args.results, drawn)


if __name__ == "__main__":
    sys.exit(main())
