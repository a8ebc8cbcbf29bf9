"""The depth sweep's figures, and what the page says of them.

``pinn_depth_sweep_<problem>.png``: relative L2 error against depth, per
protocol and init. From the per-step history, where runs have one:
``pinn_depth_sweep_history.png`` (gradient imbalance and test error at the
deepest depth) and ``pinn_depth_sweep_reference.png`` (the prediction reference
and the loss at the tuning depth). Each optimizer (recipe) is drawn in its own
colour and marker (`STYLES`) in every figure.
"""

from __future__ import annotations

import collections
import functools
import itertools
import pathlib
import statistics
from collections.abc import Callable, Sequence

import numpy as np

import pinn_depth_sweep_results as results
from pinn_depth_sweep_cells import Sweep

# Colour and marker per recipe (`recipes.RECIPES`), one pair each. The recipes
# the sweep runs side by side have colours of their own; the other variants of
# a recipe share its colour with another marker. Markers: o plain, s decay, D
# warmup and decay, P with the gradient-norm loss weighting, v ^ the others.
STYLES = {
    "stablegrad(prediction)+adam": ("tab:red", "o"),  # the paper's StableGrad
    "stablegrad(prediction-values)+adam": ("tab:red", "v"),
    "stablegrad(prediction-all)+adam": ("tab:red", "^"),
    "stablegrad(prediction-global)+adam": ("tab:pink", "o"),
    "stablegrad(prediction)+adam+decay": ("tab:purple", "s"),
    "stablegrad(prediction)+adam+warmup+decay": ("tab:purple", "D"),
    "stablegrad(prediction)+adam+warmup+decay+gradnorm": ("tab:purple", "P"),
    "adam": ("tab:blue", "o"),
    "adamw": ("tab:blue", "v"),
    "lamb": ("tab:blue", "^"),
    "adam+decay": ("tab:cyan", "s"),
    "adam+decay(1%)": ("tab:cyan", "v"),
    "adam+warmup+decay": ("tab:olive", "D"),
    "adam+warmup+decay+gradnorm": ("tab:olive", "P"),
    "agc+adam": ("tab:green", "o"),
    "agc+adam+warmup+decay+gradnorm": ("tab:green", "P"),
    "stablegrad+adam": ("tab:orange", "o"),
    "stablegrad(geometric_mean)+adam": ("tab:brown", "o"),
    "sgd-momentum": ("tab:gray", "o"),
    "stablegrad+sgd-momentum": ("black", "o"),
    "stablegrad(1)+sgd-momentum": ("black", "v"),
}


def styles(optimizers: Sequence[str]) -> dict[str, tuple[str, str]]:
    """(colour, marker) per optimizer: `STYLES`, then unused pairs for others.

    An optimizer missing from `STYLES` (a name no recipe has any more) gets the
    next pair no other optimizer has, in the order given.
    """
    taken = set(STYLES.values())
    spare = (
        style
        for style in itertools.product(
            ("tab:gray", "black", *(f"C{i}" for i in range(10))), "Xd*hp<>"
        )
        if style not in taken
    )
    return {o: STYLES[o] if o in STYLES else next(spare) for o in optimizers}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot(sweep: Sweep, problem: str, path: pathlib.Path) -> None:
    """Median error (min-max bars) against depth: protocols x initialisations."""
    plt = _pyplot()
    style = styles(sweep.optimizers)  # the same in every panel

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
            for opt in sweep.optimizers:
                points = [
                    (d, s)
                    for d in sweep.depths
                    if (s := sweep.summary(protocol, problem, init, opt, d)) and s["n"]
                ]
                if not points:
                    continue
                depths, found = zip(*points, strict=True)
                low, median, high = (
                    [min(s[k], 10.0) for s in found] for k in ("min", "median", "max")
                )
                color, marker = style[opt]
                ax.errorbar(
                    depths,
                    median,
                    yerr=[np.subtract(median, low), np.subtract(high, median)],
                    marker=marker,
                    capsize=3,
                    label=opt,
                    color=color,
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
        if sweep.tuning(r) or record is None:
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
    groups = itertools.product(sweep.problems, sweep.inits, sweep.optimizers)
    found = {g: history_at_depth(sweep, history, *g, depth, names) for g in groups}
    return {group: curve for group, curve in found.items() if curve is not None}


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
    style = styles(sweep.optimizers)
    problems = [p for p in sweep.problems if any(k[0] == p for k in found)]
    fig, axes = plt.subplots(
        len(problems),
        len(panels),
        figsize=(5.5 * len(panels), 3.6 * len(problems)),
        squeeze=False,
    )
    for row, problem in enumerate(problems):
        for opt in sweep.optimizers:
            color, marker = style[opt]
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
                        color=color,
                        marker=marker,
                        markevery=max(1, len(curve["step"]) // 6),
                        markersize=4,
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


def drawings(
    sweep: Sweep, history: dict
) -> tuple[dict[str, Callable[[pathlib.Path], None]], list[str]]:
    """The figures to draw, and what the page says of them.

    The figures by file name, each drawn by a function of its path; the notes
    on those beyond the per-problem ones (where runs have a history for them).
    """
    drawn = {
        f"pinn_depth_sweep_{p}.png": functools.partial(plot, sweep, p)
        for p in sweep.problems
    }
    notes = []
    deepest = sweep.depths[-1]
    if found := curves(sweep, history, deepest):
        drawn["pinn_depth_sweep_history.png"] = functools.partial(
            plot_history, sweep, found, deepest
        )
        notes.append(history_note(sweep, history, deepest))
    # The reference at the depth that picks the fixed protocol's lr.
    if found := curves(sweep, history, sweep.tune_depth, REFERENCE):
        drawn["pinn_depth_sweep_reference.png"] = functools.partial(
            plot_reference, sweep, found, sweep.tune_depth
        )
        notes.append(reference_note(found, sweep.tune_depth))
    return drawn, notes
