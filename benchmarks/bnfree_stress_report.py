"""Table, loss-curve plots and the docs page, from the stress benchmark's CSV.

  python benchmarks/bnfree_stress_report.py            # write all
  python benchmarks/bnfree_stress_report.py --check    # all up to date?

Writes ``bnfree_stress.md`` and ``bnfree_stress_<model>_<dataset>.png`` beside
the CSV, and the docs page ``docs/results/bnfree_stress.md`` ("Results: the
BatchNorm-free stress test"). Every number there comes from the CSV.
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

import bnfree_stress_results as results
import mdtables
import recipes

SCRIPT = "benchmarks/bnfree_stress_report.py"
TITLE = "# Results: the BatchNorm-free stress test"
# A setting: the runs compared in one table and one figure panel.
SETTING = ("model", "width", "dataset", "optimizer", "lr", "steps", "batch_size")
SMOOTH = 10  # steps in the running mean of the plotted minibatch losses
# Each variant's line: a colour of its own (tab20, in `recipes.VARIANTS`'s
# order) and a marker per family (what replaces BatchNorm).
MARKERS = {"bn": "s", "none": "o", "skipinit": "^"}


def style(variant: str) -> dict[str, Any]:
    """The colour and marker `variant` is drawn with in every figure."""
    import matplotlib

    names = list(recipes.VARIANTS)
    index = names.index(variant) if variant in names else len(names)
    family = variant.split("+")[0]
    return {
        "color": matplotlib.colormaps["tab20"](index % 20),
        "marker": MARKERS.get(family, "x"),
        "markevery": 0.2,
        "markersize": 4,
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = mdtables.parser(__doc__, results.RESULTS, "bnfree_stress.md", "the table")
    parser.add_argument("--outdir", type=pathlib.Path, default=None)
    return parser.parse_args(argv)


def groups(rows: Sequence[dict[str, Any]]) -> dict[tuple, dict[str, list[dict]]]:
    """{setting: {variant: runs}}, in the order the runs were written."""
    out: dict[tuple, dict[str, list[dict]]] = collections.defaultdict(
        lambda: collections.defaultdict(list)
    )
    for row in rows:
        out[tuple(row[k] for k in SETTING)][row["variant"]].append(row)
    return out


def _num(value: float, digits: int = 3) -> str:
    return "NaN" if not math.isfinite(value) else f"{value:.{digits}g}"


def _spread(values: Sequence[float], digits: int = 3) -> str:
    """median [min, max] of the finite values, or "–" if none is."""
    finite = sorted(v for v in values if math.isfinite(v))
    if not finite:
        return "–"
    text = _num(statistics.median(finite), digits)
    if len(finite) > 1:
        text += f" [{_num(finite[0], digits)}, {_num(finite[-1], digits)}]"
    return text


def peak(losses: Sequence[float] | None) -> float:
    """The largest finite minibatch loss of a run (NaN without a history)."""
    finite = [v for v in losses or () if math.isfinite(v)]
    return max(finite) if finite else math.nan


def summary_row(
    variant: str, runs: Sequence[dict[str, Any]], history: dict | None = None
) -> list[str]:
    diverged = [r["first_nonfinite_step"] for r in runs if r["first_nonfinite_step"]]
    finite = [r for r in runs if not r["first_nonfinite_step"]]
    history = history or {}
    return [
        variant,
        f"{len(diverged)}/{len(runs)}",
        ", ".join(str(s) for s in sorted(diverged)) or "–",
        _spread([r["initial_loss"] for r in runs]),
        _spread([peak(history.get(results.run_key(r))) for r in runs], 2),
        _spread([r["final_train_loss"] for r in finite]),
        _spread([r["test_accuracy"] for r in finite]),
    ]


HEADER = [
    "variant",
    "diverged",
    "first non-finite step",
    "initial loss",
    "peak minibatch loss",
    "final train loss",
    "test accuracy",
]


def describe(setting: tuple, fields: Sequence[str] = SETTING) -> str:
    """A `SETTING` (or `FRONTIER`) in words: the learning rate where it has one."""
    s = dict(zip(fields, setting, strict=True))
    width = f" (width {s['width']})" if s["width"] else ""
    lr = f" lr {_num(s['lr'])}" if "lr" in s else ""
    return (
        f"{s['model']}{width} on {s['dataset']}, {s['optimizer']}{lr}, "
        f"{s['steps']} steps of batch {s['batch_size']}"
    )


def tables(rows: Sequence[dict[str, Any]], history: dict) -> list[str]:
    lines = []
    for setting, variants in groups(rows).items():
        body = [summary_row(v, runs, history) for v, runs in variants.items()]
        lines += [f"**{describe(setting)}**", "", *mdtables.table(HEADER, body), ""]
    return lines


# A run trains when its test accuracy reaches this (chance is about 0.1).
TRAINS = 0.5
# Where one (model, ...) is run at several learning rates: the stability frontier.
FRONTIER = ("model", "width", "dataset", "optimizer", "steps", "batch_size")


def trains(row: dict[str, Any]) -> bool:
    return not row["first_nonfinite_step"] and row["test_accuracy"] >= TRAINS


def below_eps(logs: dict[str, list[float]] | None) -> tuple[float, float]:
    """How many layers' gradient std was below Adam's eps: the most at any step
    after the first, and at the last finite step (a diverged run's log ends in
    NaNs); NaNs for runs logged before this was recorded.

    The first step is left out: SkipInit's zero-initialised branch scalars zero
    their branches' kernel gradients there, in runs that then train.
    """
    counts = [v for v in (logs or {}).get("below_eps", ())[1:] if math.isfinite(v)]
    return (max(counts), counts[-1]) if counts else (math.nan, math.nan)


def frontiers(rows: Sequence[dict[str, Any]]) -> dict[tuple, list[dict[str, Any]]]:
    """The runs of each (`FRONTIER`) setting run at two learning rates or more,
    AdamW's (the paper's baseline optimizer) first."""
    by_setting = collections.defaultdict(list)
    for row in rows:
        by_setting[tuple(row[k] for k in FRONTIER)].append(row)
    adamw_first = sorted(by_setting, key=lambda key: key[3] != "adamw")
    return {
        key: by_setting[key]
        for key in adamw_first
        if len({r["lr"] for r in by_setting[key]}) > 1
    }


def largest_lr(runs: Sequence[dict[str, Any]], variant: str, lrs: Sequence[float]):
    """The largest of `lrs` at which most of `variant`'s seeds train (or None)."""
    best = None
    for lr in lrs:
        at = [r for r in runs if r["variant"] == variant and r["lr"] == lr]
        if at and 2 * sum(map(trains, at)) > len(at):
            best = lr
    return best


def frontier_text(best: float | None, lrs: Sequence[float]) -> str:
    """`largest_lr`'s answer over the sorted `lrs` as text: "< lowest" where no
    rate trains, ">= top" where the top of the grid does (a lower bound)."""
    if best is None:
        return f"< {_num(lrs[0])}"
    return (">= " if best == lrs[-1] else "") + _num(best)


def frontier_tables(rows: Sequence[dict[str, Any]], logs: dict | None = None):
    """Per model and optimizer run at several learning rates: for each variant,
    how many seeds train at each lr, and the largest lr at which most do; with
    the per-step logs, how many layers were below Adam's eps (`below_eps`,
    medians over the seeds) at each lr."""
    logs = logs or {}
    lines = []
    for key, runs in frontiers(rows).items():
        lrs = sorted({r["lr"] for r in runs})
        variants = list(dict.fromkeys(r["variant"] for r in runs))
        body = []
        for variant in variants:
            cells = []
            for lr in lrs:
                at = [r for r in runs if r["variant"] == variant and r["lr"] == lr]
                if not at:
                    cells.append("–")
                    continue
                dead = [below_eps(logs.get(results.run_key(r))) for r in at]
                dead = [d for d in dead if math.isfinite(d[0])]
                eps_text = ""
                if dead:
                    peak, end = (statistics.median(d[i] for d in dead) for i in (0, 1))
                    eps_text = f" ({_num(peak)} → {_num(end)})"
                cells.append(f"{sum(map(trains, at))}/{len(at)}{eps_text}")
            ran = sorted({r["lr"] for r in runs if r["variant"] == variant})
            largest = frontier_text(largest_lr(runs, variant, ran), ran)
            body.append([variant, *cells, largest])
        header = ["variant", *(f"lr {_num(lr)}" for lr in lrs), "largest lr"]
        title = (
            f"**Stability frontier: {describe(key, FRONTIER)}**: seeds that train "
            f"(test accuracy >= {TRAINS}) per learning rate, and the largest learning "
            'rate at which most seeds do (">=": the largest it was run at; "<": it '
            "trains at none it was run at). In brackets, where logged: how many "
            "layers' gradient std was below Adam's eps (1e-8), the most at any step "
            "after the first → at the last (finite) step, medians over the seeds (a "
            "dead network ends with most of its layers there; a rescue brings them "
            "back; the first step is left out because SkipInit's zero branch "
            "scalars zero those gradients there)."
        )
        lines += [title, "", *mdtables.table(header, body), ""]
    return lines


# The paper's variant (StableGrad with the prediction reference, no BN) against
# each baseline, then the paper's variant on SkipInit against SkipInit alone.
PAPER = "none+stablegrad(prediction)"
JUDGED = (
    *((PAPER, base) for base in ("none", "none+agc", "skipinit", "none+stablegrad")),
    (PAPER, "bn"),
    ("skipinit+stablegrad(prediction)", "skipinit"),
)


def frontier_verdicts(rows: Sequence[dict[str, Any]]) -> list[str]:
    """One line per `JUDGED` pair and frontier, the paper's variant first.

    Over the learning rates both were run at: the largest at which most seeds
    train (higher / same / lower: where the first stands against the second),
    and how many runs train in all, written as in the frontier tables: at the
    top of the shared grid a lower bound (">="), at none of its rates "<" the
    lowest.
    """
    lines = []
    for key, runs in frontiers(rows).items():
        ran = collections.defaultdict(set)
        for r in runs:
            ran[r["variant"]].add(r["lr"])
        setting = dict(zip(FRONTIER, key, strict=True))
        where = f"{setting['model']}, {setting['optimizer']}, {setting['steps']} steps"
        for ours, theirs in JUDGED:
            lrs = sorted(ran[ours] & ran[theirs])
            if len(lrs) < 2:
                continue
            bests = [largest_lr(runs, v, lrs) for v in (ours, theirs)]
            rank = [-1 if b is None else lrs.index(b) for b in bests]
            word = ("same", "higher", "lower")[
                (rank[0] > rank[1]) - (rank[0] < rank[1])
            ]
            texts = [frontier_text(b, lrs) for b in bests]
            counts = [
                sum(trains(r) for r in runs if r["variant"] == v and r["lr"] in lrs)
                for v in (ours, theirs)
            ]
            total = sum(r["variant"] == ours and r["lr"] in lrs for r in runs)
            lines.append(
                f"* **{ours} vs {theirs}** ({where}; lr {_num(lrs[0])} to "
                f"{_num(lrs[-1])}): the largest learning rate at which most seeds "
                f"train is **{word}**: {texts[0]} vs {texts[1]}; runs that train: "
                f"{counts[0]} vs {counts[1]} (of {total})."
            )
    if not lines:
        return []
    return [
        "**Verdicts**, the paper's variant (StableGrad with the prediction "
        "reference, no normalisation) first; from the frontier tables below:",
        "",
        *lines,
        "",
    ]


def provenance(rows: Sequence[dict[str, Any]]) -> str:
    devices = sorted({r["device"] for r in rows})
    dates = sorted(r["date"][:10] for r in rows)
    commits = ", ".join(sorted({r["git_commit"] for r in rows}))
    jax_versions = ", ".join(sorted({r["jax"] for r in rows}))
    return (
        f"{len(rows)} runs on {'; '.join(devices)}, {dates[0]} to {dates[-1]}, "
        f"commits {commits}, jax {jax_versions}."
    )


NOTE = (
    "Seeds fix the initial kernels and the minibatch stream, shared by every "
    "variant of a seed. Losses and accuracies are median [min, max] over the "
    "seeds whose loss stayed finite; a diverged seed counts in the first two "
    "columns only. The peak is the largest finite minibatch loss of a run: a "
    "blow-up that ends in a dead network at chance level (loss ln 10 = 2.30, "
    "accuracy ~0.1) shows there, not as a NaN. Raw rows: "
    "`benchmarks/results/bnfree_stress.csv`, per-step "
    "losses: `bnfree_stress_history.jsonl`; command: `python "
    "benchmarks/bnfree_stress.py` (see `--help`), then `python "
    "benchmarks/bnfree_stress_report.py`."
)


def figure_name(setting: tuple) -> str:
    s = dict(zip(SETTING, setting, strict=True))
    return f"bnfree_stress_{s['model']}_{s['dataset']}.png"


def page(
    rows: Sequence[dict[str, Any]],
    body: Sequence[str],
    figures: Sequence[pathlib.Path],
    csv: pathlib.Path,
    path: pathlib.Path,
) -> str:
    """The docs page around the tables' `body`.

    Links to the CSV and the figures are relative to `path`, the page's file.
    """
    lines = [TITLE, "", *mdtables.generated(SCRIPT, [mdtables.repo_path(csv)]), ""]
    if not rows:
        return "\n".join([*lines, "_No runs yet._", ""])
    lines += [
        f"Raw rows: [`{csv.name}`]({mdtables.link(csv, path)}).",
        "",
        *body,
        NOTE + " " + provenance(rows),
        "",
        *(f"![{f.name}]({mdtables.link(f, path)})" for f in figures),
    ]
    return "\n".join(lines) + "\n"


def _running_mean(values: Sequence[float], window: int) -> list[float]:
    out = []
    for i in range(len(values)):
        part = values[max(0, i - window + 1) : i + 1]
        out.append(math.fsum(part) / len(part))
    return out


def plot(rows, history, figure: str, path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings = [s for s in groups(rows) if figure_name(s) == figure]
    fig, axes = plt.subplots(
        1, len(settings), figsize=(6 * len(settings), 4), squeeze=False
    )
    for ax, setting in zip(axes[0], settings, strict=True):
        for variant, runs in groups(rows)[setting].items():
            curves = [history.get(results.run_key(r)) for r in runs]
            curves = [c for c in curves if c]
            if not curves:
                continue
            steps = len(curves[0])
            # a diverged seed counts as an infinite loss from its first NaN on
            median = [
                statistics.median(v if math.isfinite(v) else math.inf for v in step)
                for step in zip(*curves, strict=True)
            ]
            finite = [i for i in range(steps) if math.isfinite(median[i])]
            if not finite:
                continue
            smooth = _running_mean([median[i] for i in finite], SMOOTH)
            look = style(variant)
            ax.plot([i + 1 for i in finite], smooth, label=variant, **look)
            if finite[-1] < steps - 1:  # the median run diverged here
                ax.plot(finite[-1] + 1, smooth[-1], "x", color=look["color"])
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel(f"minibatch loss (median over seeds, mean of {SMOOTH} steps)")
        ax.set_title(describe(setting), fontsize=9)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    rows = results.read_rows(args.results)
    outdir = args.outdir or args.results.parent
    logs = results.read_logs(args.results)
    history = {key: log["loss"] for key, log in logs.items()}
    figures = {
        outdir / name: functools.partial(plot, rows, history, name)
        for name in dict.fromkeys(figure_name(s) for s in groups(rows))
    }
    body = [
        *frontier_verdicts(rows),
        *frontier_tables(rows, logs),
        *tables(rows, history),
    ]
    table_text = "\n".join(["# BatchNorm-free stress benchmark", "", *body])
    table_text += "\n" + NOTE + (" " + provenance(rows) if rows else "") + "\n"
    outputs = {
        args.page: page(rows, body, list(figures), args.results, args.page),
        outdir / "bnfree_stress.md": table_text,
    }
    return mdtables.check_or_write(outputs, args.check, SCRIPT, args.results, figures)


if __name__ == "__main__":
    sys.exit(main())
