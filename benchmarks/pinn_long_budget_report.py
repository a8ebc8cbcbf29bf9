"""Pages of the depth sweep runner's side runs at one learning rate, from their CSVs.

The 20,000-step campaign (``benchmarks/campaigns/pinn_long_budget.json``; seeds
1-3; histories in ``pinn_long_budget_history.jsonl``): its docs page gives per
cell the errors and the time per step (``overhead.py --only loss-weighting``),
the verdicts of the comparisons it exists for, and published numbers.

The readings of "the std of dL/d(prediction)" (`pinn.PREDICTION_READINGS`:
``data``, u at the boundary and initial points; ``values``, u at every point;
``all``, every output the loss reads) each set the reference in the side run

  cd benchmarks && python pinn_depth_sweep.py --problems poisson --inits critical \\
    --depths 32 --tune-depth 32 --lrs 1e-4 --results \\
    results/pinn_prediction_readings.csv --optimizers \\
    "stablegrad(prediction)+adam,stablegrad(prediction-values)+adam,stablegrad(prediction-all)+adam"

(and the same on Helmholtz); every run logs all three (in
``pinn_prediction_readings_history.jsonl``). ``pinn_prediction_readings.md``,
beside its CSV, gives the final errors and how each reading falls over a run.

  python benchmarks/pinn_long_budget_report.py            # writes both
  python benchmarks/pinn_long_budget_report.py --check    # are they up to date?
"""

from __future__ import annotations

import itertools
import json
import pathlib
import statistics
import sys
from collections.abc import Sequence
from operator import itemgetter

import mdtables
import pinn_depth_sweep_results as results
from pinn_depth_sweep_results import TUNE_SEED, lr_text, num

SCRIPT = "benchmarks/pinn_long_budget_report.py"
RESULTS = results.RESULTS.with_name("pinn_long_budget.csv")
COSTS = results.RESULTS.with_name("loss_weighting_cost.json")  # the time column
READINGS = results.RESULTS.with_name("pinn_prediction_readings.csv")
DEEP_PINNS = mdtables.ROOT / "docs" / "deep_pinns.md"  # explains the campaign
READING_OF = {  # the recipes of the readings' side run, and the reading each steps by
    "stablegrad(prediction)+adam": "data",
    "stablegrad(prediction-values)+adam": "values",
    "stablegrad(prediction-all)+adam": "all",
}
SCHEDULE = "adam+warmup+decay"  # the schedule alone: times are ratios to it
STANDARD = "adam+warmup+decay+gradnorm"  # the core of the field's recipe
PAPER = "stablegrad(prediction)+adam+warmup+decay"
STANDARD_PAPER = "stablegrad(prediction)+adam+warmup+decay+gradnorm"
AGC = "agc+adam+warmup+decay+gradnorm"
RECIPES = (SCHEDULE, STANDARD, PAPER, STANDARD_PAPER, AGC)  # table order
THRESHOLDS = (1e-1, 1e-2)
# (question, first, second): each line judges the first against the second.
COMPARISONS = (
    ("StableGrad added to the standard recipe", STANDARD_PAPER, STANDARD),
    ("StableGrad added to the schedule alone", PAPER, SCHEDULE),
    ("gradient-norm weighting added to the schedule alone", STANDARD, SCHEDULE),
    ("StableGrad against gradient-norm weighting", PAPER, STANDARD),
    ("AGC against StableGrad, each in the standard recipe", AGC, STANDARD_PAPER),
)
# Context: what published PINNs reached on these problems, and with what.
LITERATURE_HEADER = ("problem", "source", "network", "training", "points", "rel. L2")
LITERATURE = (
    (
        "Burgers",
        "Raissi, Perdikaris & Karniadakis 2019 (arXiv:1711.10561, §2.1, Table 1)",
        "8 hidden tanh layers of 20",
        "L-BFGS, full batch",
        "100 initial/boundary, 10,000 collocation (fixed)",
        "6.7e-4",
    ),
    (
        "Helmholtz (a1 = 1, a2 = 4, k = 1)",
        "Wang, Teng & Perdikaris 2021 (arXiv:2001.04536, Table 2, mean of 10 runs)",
        "3 hidden tanh layers of 50",
        "Adam, lr 1e-3 decayed, 40,000 steps; weights updated every 10 steps",
        "128 per term, resampled",
        "1.06e-1 plain; 1.12e-2 with their gradient-norm weighting",
    ),
    ("Poisson (sin 2πx sin 2πy)", "no published result found at this setting")
    + ("–",) * 4,
)


def cells(rows: Sequence[dict]) -> dict[tuple, list[dict]]:
    """Rows by (problem, depth, recipe)."""
    return dict(mdtables.group(rows, itemgetter("problem", "depth", "optimizer")))


def summary(runs: Sequence[dict], column: str = "final_rel_l2") -> dict:
    """Median, range and seeds under each threshold of an error column."""
    stats = results.summarize([r[column] for r in runs])  # NaN: infinite
    stats["under"] = [sum(r[column] < t for r in runs) for t in THRESHOLDS]
    return stats


def load_costs(path: pathlib.Path = COSTS) -> dict:
    """The interleaved timings of the campaign's recipes by (problem, depth), if any."""
    saved = json.loads(path.read_text()) if path.exists() else {}
    return {
        (entry["settings"]["problem"], entry["settings"]["depth"]): entry
        for key, entry in saved.items()
        if key.startswith("recipes_")
    }


def step_ratio(costs: dict, problem: str, depth: int, recipe: str) -> str:
    """Time per step against the schedule alone's, from the cell's interleaved
    timing (`load_costs`); "–" where not timed."""
    entry = costs.get((problem, depth)) or {}
    ratios = entry.get(f"wall_median_ratio_to_{SCHEDULE}")  # None: another first
    if ratios is None or recipe not in entry["step_s"]["wall"]:
        return "–"
    return f"{1.0 if recipe == SCHEDULE else ratios[recipe]:.2f}"


def timing_note(costs: dict) -> str:
    """Where the time column comes from, one line."""
    if not costs:
        return "No interleaved timing yet: the time column is empty."
    values = lambda get: ", ".join(sorted({str(get(e)) for e in costs.values()}))
    cells = ", ".join(f"{p} {d}" for p, d in sorted(costs))
    return (
        f"Time per step: the median ratio of wall-clock time per step over "
        f"{values(lambda e: e['settings']['rounds'])} interleaved rounds of "
        f"{values(lambda e: e['settings']['steps'])} steps per recipe, the seeds "
        "trained together, measured by `python benchmarks/overhead.py --only "
        f"loss-weighting --problem P --depth D --recipes ...` ({cells}; "
        f"{values(lambda e: e['device'])}; {values(lambda e: e['date'])}; "
        "`benchmarks/results/loss_weighting_cost.json`), not from the campaign's "
        "batches, which shared the CPU with other work."
    )


def tables(found: dict[tuple, list[dict]], costs: dict) -> list[str]:
    """One table per problem: a row per (recipe, depth) that ran."""
    header = ["recipe", "depth", "final rel. L2: median [range]", "best (median)"]
    header += [*(f"< {t:.0e}" for t in THRESHOLDS), f"time / step vs `{SCHEDULE}`"]
    depths = sorted({d for _, d, _ in found})
    lines = []
    for problem in sorted({p for p, _, _ in found}):
        body = []
        for recipe, depth in itertools.product(RECIPES, depths):
            if runs := found.get((problem, depth, recipe)):
                s, best = summary(runs), summary(runs, "best_rel_l2")["median"]
                errors = f"{num(s['median'])} [{num(s['min'])}, {num(s['max'])}]"
                under = [f"{k}/{s['n']}" for k in s["under"]]
                ratio = step_ratio(costs, problem, depth, recipe)
                body.append(
                    [f"`{recipe}`", str(depth), errors, num(best), *under, ratio]
                )
        lines += [f"### {problem.capitalize()}", "", *mdtables.table(header, body), ""]
    return lines


def _medians(found: dict[tuple, list[dict]], seeds: int) -> dict[tuple, float]:
    """The median final error of each cell that has every seed."""
    return {
        k: summary(runs)["median"] for k, runs in found.items() if len(runs) >= seeds
    }


def verdict(medians: dict[tuple, float], cells) -> str | None:
    """ "b / s / w of n (ratio r; each cell)" over the (name, our cell, their cell)
    `cells` where both have every seed (`_medians`); None where none has."""
    pairs = [
        (n, medians[a], medians[b]) for n, a, b in cells if {a, b} <= medians.keys()
    ]
    if not pairs:
        return None
    counts = [sum(results.judge(a, b) == k for _, a, b in pairs) for k in range(3)]
    ratio = results.geo_mean_ratio([(a, b) for _, a, b in pairs])
    each = ", ".join(f"{name} {num(a)} vs {num(b)}" for name, a, b in pairs)
    return f"{' / '.join(map(str, counts))} of {len(pairs)} (ratio {ratio:.2f}; {each})"


def comparisons(found: dict[tuple, list[dict]], seeds: int) -> list[str]:
    """The campaign's verdict lines, over cells where both have every seed."""
    keys, medians = sorted({(p, d) for p, d, _ in found}), _medians(found, seeds)
    lines = []
    for question, first, second in COMPARISONS:
        cells = [(f"{p} {d}", (p, d, first), (p, d, second)) for p, d in keys]
        text = verdict(medians, cells) or "no cell has both yet"
        lines.append(f"* **{question}** (`{first}` vs `{second}`): {text}.")
    lines.append(overlap(found, seeds))
    problems = sorted({p for p, _ in keys})
    for recipe in RECIPES:  # each recipe at depth 32 against itself at 8
        cells = [(p, (p, 32, recipe), (p, 8, recipe)) for p in problems]
        if text := verdict(medians, cells):
            lines.append(f"* **Depth 32 against depth 8, `{recipe}`**: {text}.")
    return lines


def overlap(found: dict[tuple, list[dict]], seeds: int) -> str:
    """Does StableGrad's gain shrink once the weighting is there? Its
    geometric-mean ratio without and with it, over the cells that have all four."""
    four, medians = (SCHEDULE, PAPER, STANDARD, STANDARD_PAPER), _medians(found, seeds)
    keys = sorted({k[:2] for k in found if all((*k[:2], r) in medians for r in four)})
    question = "* **Do StableGrad and the weighting overlap?**"
    if not keys:
        return f"{question} No cell has all four yet."
    gain = lambda ours, theirs: results.geo_mean_ratio(
        [(medians[(*k, ours)], medians[(*k, theirs)]) for k in keys]
    )
    alone, weighted = gain(PAPER, SCHEDULE), gain(STANDARD_PAPER, STANDARD)
    if weighted >= 1 / results.BETTER and alone < results.BETTER:
        reading = "its gain is gone once the weighting is there: they overlap"
    elif weighted > alone / results.BETTER:
        reading = "its gain shrinks with the weighting: they overlap in part"
    elif weighted < alone * results.BETTER:
        reading = "it gains more with the weighting than without"
    else:
        reading = "its effect is about the same with and without the weighting"
    return (
        f"{question} Over {len(keys)} cells "
        f"({', '.join(f'{p} {d}' for p, d in keys)}), StableGrad's ratio is "
        f"{alone:.2f} added to the schedule alone and {weighted:.2f} added to the "
        f"schedule with the weighting: {reading}."
    )


def setting(rows: Sequence[dict], csv: str) -> str:
    """The settings every row shares and the provenance, one line (`csv`: a link)."""
    one = lambda k: ", ".join(str(v) for v in sorted({r[k] for r in rows}))
    span = mdtables.span({r["date"] for r in rows})
    return (
        f"{len(rows)} runs in {csv} (per-run histories beside it, "
        "`*_history.jsonl`: the error, loss and loss weights every 100 steps): "
        f"tanh MLPs of width {one('width')}, {one('init')} init, {one('steps')} "
        f"steps of {one('num_interior')} interior + "
        f"{one('num_boundary')} boundary (+ initial) points resampled every step, "
        f"peak learning rate {one('lr')} for every recipe (10% linear warmup, then "
        f"exponential decay to 10% of the peak), seeds {one('seed')}. Devices: "
        f"{one('device')}; {span}; commits {one('git_commit')}."
    )


def page(
    rows: Sequence[dict], source: pathlib.Path, page_path: pathlib.Path, costs=None
) -> str:
    found, costs = cells(rows), costs or {}
    seeds = len({r["seed"] for r in rows})
    csv = f"[`{mdtables.repo_path(source)}`]({mdtables.link(source, page_path)})"
    lines = [
        *mdtables.generated(SCRIPT, [mdtables.repo_path(source)]),
        "",
        "# Results: 20,000 steps with the field's recipe",
        "",
        "Does StableGrad help PINNs trained with the core of jaxpi's recipe "
        "(Wang, Teng & Perdikaris 2021; see "
        f"[Deep PINNs]({mdtables.link(DEEP_PINNS, page_path)})): Adam with warmup "
        "and decay, points resampled every step, gradient-norm loss weighting (K "
        "= 100)? Not all of that recipe is here: no Fourier features, no modified "
        "MLP, no causal weighting. And one learning rate for every recipe and depth "
        "(jaxpi's 1e-3), no tuning, as a user of the recipe runs it (a limitation: "
        "the short sweep found that the best rate follows the depth).",
        "",
        setting(rows, csv) if rows else "No runs yet.",
        "",
        "## Per cell",
        "",
        "Best: the lowest error logged on the way (every 100 steps; a run can "
        "reach a good solution and leave it). A final error near 1 is the trivial "
        "solution u = 0.",
        "",
        timing_note(costs),
        "",
        *tables(found, costs),
        "## Verdicts",
        "",
        f"Over the cells where both have every seed: {results.RULE}.",
        "",
        *comparisons(found, seeds),
        "",
        "## Context: published numbers on these problems",
        "",
        "Not a like-for-like comparison: other networks, optimizers, budgets "
        "and points (read from the arXiv versions of the papers; Raissi et "
        "al. say '9 layers', counting the input and output layers; Wang et "
        "al. write 4 hidden layers, their code and Table 2 have 3).",
        "",
        *mdtables.table(LITERATURE_HEADER, LITERATURE),
        "",
    ]
    return "\n".join(lines)


def readings_tables(rows: Sequence[dict], history: dict) -> tuple[list, list]:
    """Per (problem, depth, reading that set the reference, lr), over the reported
    seeds: the final errors (median, each seed's, how many train), and each
    reading's scale in the first and the last logged chunk (medians, where logged)."""

    def cell(r):  # (problem, depth, reading that set the reference, lr)
        return r["problem"], r["depth"], READING_OF[r["optimizer"]], lr_text(r["lr"])

    ours = (r for r in rows if r["optimizer"] in READING_OF and r["seed"] != TUNE_SEED)
    g = "{:.3g}".format
    errors, scales = [], []
    for key, runs in sorted(mdtables.group(ours, cell).items()):
        key = [*map(str, key)]
        final = sorted(r["final_rel_l2"] for r in runs)
        trained = f"{sum(e < results.TRAINED for e in final)}/{len(final)}"
        median = g(statistics.median(final))
        errors.append([*key, median, ", ".join(map(g, final)), trained])
        logged = [history.get(results.run_key(r)) for r in runs]
        logged = [h["reference_scale"] for h in logged if h and "reference_scale" in h]
        if logged:
            cells = []
            for reading in READING_OF.values():
                first, last = (
                    statistics.median(h[reading][i] for h in logged) for i in (0, -1)
                )
                cells.append(f"{g(first)} -> {g(last)} ({g(first / last)}x)")
            scales.append([*key, *cells])
    return errors, scales


def readings_page(rows: Sequence[dict], history: dict) -> str:
    """``pinn_prediction_readings.md``: which reading should set the reference."""
    errors, scales = readings_tables(rows, history)
    key = ["problem", "depth"]
    error = ["lr", "median final rel-L2", "seeds", f"< {results.TRAINED}"]
    fall = [f"{r}: first -> last (fall)" for r in READING_OF.values()]
    lines = [
        "# Which reading of a PINN's prediction sets the paper's reference",
        "",
        f"Generated by `{SCRIPT}` from "
        "`pinn_prediction_readings.csv` (command in the script's docstring); "
        f"device: {', '.join(sorted({r['device'] for r in rows}))}; "
        f"{mdtables.span(r['date'] for r in rows)}; {len(rows)} runs. Critical "
        "init, tanh, width 50, 1500 steps; the tuning seed "
        f"({TUNE_SEED}) is left out of every number below.",
        "",
        "## Final error by the reading that set the reference",
        "",
        *mdtables.table([*key, "reading that sets the reference", *error], errors),
        "",
        "## The three readings over a run",
        "",
        "Each run logs all three readings (mean over the first and the last "
        "logged chunk of steps), whichever one set its reference; median over "
        "the seeds.",
        "",
        *mdtables.table([*key, "run with", "lr", *fall], scales),
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = mdtables.parser(__doc__, RESULTS, "long_budget.md", "the readings' tables")
    parser.add_argument("--readings", type=pathlib.Path, default=READINGS)
    args = parser.parse_args(argv)
    rows = results.read_rows(args.results)
    outputs = {args.page: page(rows, args.results, args.page, load_costs())}
    if readings := results.read_rows(args.readings):
        history = results.read_history(args.readings)
        outputs[args.readings.with_suffix(".md")] = readings_page(readings, history)
    return mdtables.check_or_write(outputs, args.check, SCRIPT, args.results)


if __name__ == "__main__":
    sys.exit(main())
