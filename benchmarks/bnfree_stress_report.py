"""Table, loss-curve plots and the docs page, from the stress benchmark's CSV.

  python benchmarks/bnfree_stress_report.py            # write all
  python benchmarks/bnfree_stress_report.py --check    # all up to date?

Writes ``bnfree_stress.md`` and ``bnfree_stress_<model>_<dataset>.png`` beside
the CSV (or in ``--outdir``) and the docs page ``docs/results/bnfree_stress.md``.
"""

from __future__ import annotations

import functools
import math
import pathlib
import statistics
import sys
from collections.abc import Sequence
from operator import itemgetter
from typing import Any

import bnfree_stress_results as results
import mdtables
import recipes
from mdtables import group

SCRIPT = "benchmarks/bnfree_stress_report.py"
TITLE = "# Results: the BatchNorm-free stress test"
# A setting: the runs compared in one table and one figure panel.
SETTING = ("model", "width", "dataset", "optimizer", "lr", "steps", "batch_size")
# Where one (model, ...) is run at several learning rates: the stability frontier.
FRONTIER = ("model", "width", "dataset", "optimizer", "steps", "batch_size")
SMOOTH = 10  # steps in the running mean of the plotted minibatch losses
TRAINS = 0.5  # a run trains when its test accuracy reaches this (chance ~0.1)
# Most seeds of a cell train when the 90% Wilson interval's lower bound >= MOST.
Z90, MOST = 1.6449, 0.5
# The figures' marker per family (what replaces BatchNorm); see `style`.
MARKERS = {"bn": "s", "none": "o", "skipinit": "^"}
HEADER = ["variant", "diverged", "first non-finite step", "initial loss"]
HEADER += ["peak minibatch loss", "final train loss", "test accuracy"]
# The paper's variant (StableGrad with the prediction reference, no BN) against
# each baseline, then the paper's variant on SkipInit against SkipInit alone.
PAPER = "none+stablegrad(prediction)"
JUDGED = (
    *((PAPER, base) for base in ("none", "none+agc", "skipinit", "none+stablegrad")),
    (PAPER, "bn"),
    ("skipinit+stablegrad(prediction)", "skipinit"),
)
NOTE = (
    "**Per setting.** A seed fixes the initial kernels and the minibatch stream "
    "for every variant. Losses and accuracies: median [min, max] over the seeds "
    "whose loss stayed finite (a diverged seed counts in the first two columns "
    "only). The peak, the largest finite minibatch loss, shows a blow-up that ends "
    "at chance level (loss ln 10 = 2.30, accuracy ~0.1) rather than in a NaN."
)
COMMAND = (
    "Command: `python benchmarks/bnfree_stress.py` (see `--help`), then "
    f"`python {SCRIPT}`; raw rows: `benchmarks/results/bnfree_stress.csv`, "
    "per-step logs: `bnfree_stress_history.jsonl`."
)
FRONTIERS = (
    "**Stability frontiers** (the method: `docs/bnfree.md`). Per learning rate, "
    f"the seeds that train (test accuracy >= {TRAINS}) with the 90% Wilson interval "
    "of that fraction, each cell's seeds from one machine: at the edge of "
    "stability the same seed can train on one CPU and die on another. Largest lr: "
    f"the largest rate whose lower bound is at least {MOST}: with 3 seeds only 3 of "
    '3 (0.53), with 10 seeds 8 of 10 (0.54; 7 of 10: 0.44); ">=": the largest '
    'rate run, "<": none qualifies. In parentheses, '
    "where logged: how many layers' gradient std was below Adam's eps (1e-8), the "
    "most after the first step (where SkipInit's zero-init gains zero them) → at "
    "the last finite step, medians over the seeds; a dead network ends with most of "
    "its layers there, a rescued one with few."
)


def style(variant: str) -> dict[str, Any]:
    """The colour and marker `variant` is drawn with in every figure."""
    import matplotlib

    names = list(recipes.VARIANTS)
    index = names.index(variant) if variant in names else len(names)
    return {
        "color": matplotlib.colormaps["tab20"](index % 20),
        "marker": MARKERS.get(variant.split("+")[0], "x"),
        "markevery": 0.2,
        "markersize": 4,
    }


def wilson(k: int, n: int, z: float = Z90) -> tuple[float, float]:
    """The Wilson score interval of a fraction `k` / `n` (90% by default)."""
    p, z2 = k / n, z * z
    scale = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / scale
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / scale
    return max(0.0, centre - half), min(1.0, centre + half)


def one_machine(rows: Sequence[dict[str, Any]]) -> tuple[list[dict], list[dict]]:
    """Each cell's runs from the machine (``device``) that made the most of
    them, and the runs of that cell made elsewhere (a cell is not mixed)."""
    kept, elsewhere = [], []
    for runs in group(rows, lambda r: results.run_key(r)[:-1]).values():
        by_device = group(runs, itemgetter("device"))
        main = max(by_device, key=lambda d: len(by_device[d]))
        for device, own in by_device.items():
            (kept if device == main else elsewhere).extend(own)
    return kept, elsewhere


def reruns(kept: Sequence[dict], elsewhere: Sequence[dict]) -> list[str]:
    """The runs made on two machines, and those that trained on one only."""
    mine = {results.run_key(r): r for r in kept}
    pairs = [(mine[k], r) for r in elsewhere if (k := results.run_key(r)) in mine]
    if not pairs:
        return []
    flips = [
        f"{a['model']} {a['optimizer']} lr {_num(a['lr'])} {a['variant']} seed "
        f"{a['seed']}: {a['test_accuracy']:.3f} against {b['test_accuracy']:.3f}"
        for a, b in pairs
        if trains(a) != trains(b)
    ]
    devices = "; ".join(sorted({b["device"] for _, b in pairs}))
    return [
        f"**Reruns on another machine.** {len(pairs)} runs (cell and seed) were "
        f"also made on {devices}; the tables use the machine with the most runs "
        f"of each cell. {len(flips)} of the {len(pairs)} landed on the other side "
        f"of the threshold (test accuracy here against there){':' if flips else '.'}"
        + "".join(f"\n* {flip}" for flip in flips),
        "",
    ]


def groups(rows: Sequence[dict[str, Any]]) -> dict[tuple, dict[str, list[dict]]]:
    """{setting: {variant: runs}}, in the order the runs were written."""
    return {
        setting: group(runs, itemgetter("variant"))
        for setting, runs in group(rows, itemgetter(*SETTING)).items()
    }


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
    return max((v for v in losses or () if math.isfinite(v)), default=math.nan)


def summary_row(variant: str, runs: Sequence[dict], history=None) -> list[str]:
    """A table row: divergences, and the spread of losses and accuracies."""
    diverged = [r["first_nonfinite_step"] for r in runs if r["first_nonfinite_step"]]
    finite = [r for r in runs if not r["first_nonfinite_step"]]
    return [
        variant,
        f"{len(diverged)}/{len(runs)}",
        ", ".join(str(s) for s in sorted(diverged)) or "–",
        _spread([r["initial_loss"] for r in runs]),
        _spread([peak((history or {}).get(results.run_key(r))) for r in runs], 2),
        _spread([r["final_train_loss"] for r in finite]),
        _spread([r["test_accuracy"] for r in finite]),
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


def trains(row: dict[str, Any]) -> bool:
    return not row["first_nonfinite_step"] and row["test_accuracy"] >= TRAINS


def below_eps(logs: dict[str, list[float]] | None) -> tuple[float, float]:
    """How many layers' gradient std was below Adam's eps: the most at any step
    after the first, and at the last finite step (NaNs without that log)."""
    counts = [v for v in (logs or {}).get("below_eps", ())[1:] if math.isfinite(v)]
    return (max(counts), counts[-1]) if counts else (math.nan, math.nan)


def frontiers(rows: Sequence[dict[str, Any]]) -> dict[tuple, list[dict[str, Any]]]:
    """The runs of each `FRONTIER` setting run at several rates, AdamW's first."""
    by_setting = group(rows, itemgetter(*FRONTIER))
    several = [k for k, runs in by_setting.items() if len({r["lr"] for r in runs}) > 1]
    return {k: by_setting[k] for k in sorted(several, key=lambda k: k[3] != "adamw")}


def largest_lr(runs: Sequence[dict[str, Any]], lrs: Sequence[float]):
    """The largest of the sorted `lrs` at which most of `runs` (one variant's)
    train (Wilson lower bound >= `MOST`): its index (-1: none) and as text."""
    most = lambda at: at and wilson(sum(map(trains, at)), len(at))[0] >= MOST
    ok = [i for i, lr in enumerate(lrs) if most([r for r in runs if r["lr"] == lr])]
    if not ok:
        return -1, f"< {_num(lrs[0])}"
    return ok[-1], (">= " if ok[-1] == len(lrs) - 1 else "") + _num(lrs[ok[-1]])


def _frontier_cell(runs: Sequence[dict[str, Any]] | None, logs: dict) -> str:
    """One variant's seeds that train at one lr, and their median `below_eps`."""
    if not runs:
        return "–"
    dead = [below_eps(logs.get(results.run_key(r))) for r in runs]
    dead = [d for d in dead if math.isfinite(d[0])]
    low, high = wilson(sum(map(trains, runs)), len(runs))
    text = f"{sum(map(trains, runs))}/{len(runs)} [{low:.2f}, {high:.2f}]"
    if dead:
        most, end = (statistics.median(d[i] for d in dead) for i in (0, 1))
        text += f" ({_num(most)} → {_num(end)})"
    return text


def frontier_tables(rows: Sequence[dict[str, Any]], logs: dict | None = None):
    """Per frontier and variant: the seeds that train at each lr (with the
    `below_eps` counts from the per-step `logs`), and the largest lr."""
    lines = []
    for key, runs in frontiers(rows).items():
        lrs = sorted({r["lr"] for r in runs})
        at = group(runs, itemgetter("variant", "lr"))
        body = []
        for variant, own in group(runs, itemgetter("variant")).items():
            ran = sorted({r["lr"] for r in own})
            cells = [_frontier_cell(at.get((variant, lr)), logs or {}) for lr in lrs]
            body.append([variant, *cells, largest_lr(own, ran)[1]])
        header = ["variant", *(f"lr {_num(lr)}" for lr in lrs), "largest lr"]
        title = f"**Stability frontier: {describe(key, FRONTIER)}**"
        lines += [title, "", *mdtables.table(header, body), ""]
    return [FRONTIERS, "", *lines] if lines else []


def frontier_verdicts(rows: Sequence[dict[str, Any]]) -> list[str]:
    """One line per `JUDGED` pair and frontier, over the learning rates both
    were run at: the first's largest lr against the second's, and runs that train."""
    lines = []
    for key, runs in frontiers(rows).items():
        of = group(runs, itemgetter("variant"))
        s = dict(zip(FRONTIER, key, strict=True))
        where = f"{s['model']}, {s['optimizer']}, {s['steps']} steps"
        for ours, theirs in JUDGED:
            lrs = sorted({r["lr"] for r in of[ours]} & {r["lr"] for r in of[theirs]})
            if len(lrs) < 2:
                continue
            shared = [[r for r in of[v] if r["lr"] in lrs] for v in (ours, theirs)]
            (rank, text), (other, other_text) = (largest_lr(b, lrs) for b in shared)
            word = "higher" if rank > other else "lower" if rank < other else "same"
            counts = [sum(map(trains, both)) for both in shared]
            lines.append(
                f"* **{ours} vs {theirs}** ({where}; lr {_num(lrs[0])} to "
                f"{_num(lrs[-1])}): **{word}**, {text} vs {other_text}; runs that "
                f"train: {counts[0]} of {len(shared[0])} vs {counts[1]} of "
                f"{len(shared[1])}."
            )
    if not lines:
        return []
    return [
        "**Verdicts**, from the frontier tables below, over the learning rates both "
        "were run at: the paper's variant (StableGrad with the prediction reference, "
        "no normalisation) against each baseline, and on SkipInit against SkipInit "
        "alone. Is the first's largest rate where most seeds train (90% lower bound "
        f">= {MOST}) higher, the same or lower; how many runs of each train?",
        "",
        *lines,
        "",
    ]


def provenance(rows: Sequence[dict[str, Any]]) -> str:
    dates = mdtables.span(r["date"][:10] for r in rows)
    each = lambda key: ", ".join(sorted({r[key] for r in rows}))
    machines = "; ".join(
        f"{len(runs)} on {device}"
        for device, runs in group(rows, itemgetter("device")).items()
    )
    return (
        f"{len(rows)} runs ({machines}), {dates}, commits "
        f"{each('git_commit')}, jax {each('jax')}. Rows record the CPU model "
        "(or GPU) and XLA_FLAGS since 2026-12-06; `cpu: cpu (2 cores)` is an "
        "earlier 2-core CPU whose model was not recorded."
    )


def figure_name(setting: tuple) -> str:
    model, _, dataset = setting[:3]
    return f"bnfree_stress_{model}_{dataset}.png"


def plot(rows, history, figure: str, path: pathlib.Path) -> None:
    from matplotlib.figure import Figure

    settings = {s: v for s, v in groups(rows).items() if figure_name(s) == figure}
    fig = Figure(figsize=(6 * len(settings), 4))
    axes = fig.subplots(1, len(settings), squeeze=False)
    for ax, (setting, variants) in zip(axes[0], settings.items(), strict=True):
        for variant, runs in variants.items():
            curves = [c for r in runs if (c := history.get(results.run_key(r)))]
            # a diverged seed counts as an infinite loss from its first NaN on
            median = [
                statistics.median(v if math.isfinite(v) else math.inf for v in step)
                for step in zip(*curves, strict=True)
            ]
            finite = [i for i, m in enumerate(median) if math.isfinite(m)]
            if not finite:
                continue
            values = [median[i] for i in finite]
            smooth = [  # the running mean of up to SMOOTH finite medians
                math.fsum(values[max(0, j - SMOOTH + 1) : j + 1]) / min(j + 1, SMOOTH)
                for j in range(len(values))
            ]
            look = style(variant)
            ax.plot([i + 1 for i in finite], smooth, label=variant, **look)
            if finite[-1] < len(median) - 1:  # the median run diverged here
                ax.plot(finite[-1] + 1, smooth[-1], "x", color=look["color"])
        ylabel = f"minibatch loss (median over seeds, mean of {SMOOTH} steps)"
        ax.set(yscale="log", xlabel="step", ylabel=ylabel)
        ax.set_title(describe(setting), fontsize=9)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: Sequence[str] | None = None) -> int:
    parser = mdtables.parser(__doc__, results.RESULTS, "bnfree_stress.md", "the table")
    parser.add_argument("--outdir", type=pathlib.Path, default=None)
    args = parser.parse_args(argv)
    every = results.read_rows(args.results)
    rows, elsewhere = one_machine(every)
    outdir = args.outdir or args.results.parent
    logs = results.read_logs(args.results)
    history = {key: log["loss"] for key, log in logs.items()}
    figures = {
        outdir / name: functools.partial(plot, rows, history, name)
        for name in dict.fromkeys(figure_name(s) for s in groups(rows))
    }
    body = [*frontier_verdicts(rows), *frontier_tables(rows, logs)]
    body += [*reruns(rows, elsewhere), NOTE, ""]
    for setting, variants in groups(rows).items():  # a table per setting
        table = [summary_row(v, runs, history) for v, runs in variants.items()]
        body += [f"**{describe(setting)}**", "", *mdtables.table(HEADER, table), ""]
    body += [COMMAND + (" " + provenance(every) if every else ""), ""]
    csv, page = args.results, args.page
    docs = [TITLE, "", *mdtables.generated(SCRIPT, [mdtables.repo_path(csv)]), ""]
    if rows:  # the docs page: links relative to its file
        docs += [f"Raw rows: [`{csv.name}`]({mdtables.link(csv, page)}).", "", *body]
        docs += [*(f"![{f.name}]({mdtables.link(f, page)})" for f in figures), ""]
    else:
        docs += ["_No runs yet._", ""]
    table = "\n".join(["# BatchNorm-free stress benchmark", "", *body])
    outputs = {page: "\n".join(docs), outdir / "bnfree_stress.md": table}
    return mdtables.check_or_write(outputs, args.check, SCRIPT, args.results, figures)


if __name__ == "__main__":
    sys.exit(main())
