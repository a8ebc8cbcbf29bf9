"""The depth sweep's figures, and what the page says of them.

``pinn_depth_sweep_<problem>.png``: error against depth, per protocol and init;
from the per-step histories, ``pinn_depth_sweep_history.png`` (gradient
imbalance and test error at the deepest depth) and
``pinn_depth_sweep_reference.png`` (the prediction reference and the loss at
the tuning depth). Each optimizer has one colour and marker (`Recipe.style`).
"""

from __future__ import annotations

import collections
import functools
import itertools
import pathlib
import statistics
from collections.abc import Callable, Sequence

import numpy as np
from matplotlib.figure import Figure

import pinn_depth_sweep_results as results
import recipes
from pinn_depth_sweep_results import Sweep

STYLES = {name: recipe.style for name, recipe in recipes.RECIPES.items()}
# The per-step figures' panels: (history name, y label, title); "a/b" reads a["b"].
HISTORY = (
    ("grad_imbalance", "per-layer grad std, max / min", "gradient imbalance (median)"),
    ("rel_l2", "relative L2 (median)", "test error at the tuned lr"),
)
REFERENCE = (
    ("reference_scale/data", "std of dL/du at the data points", "reference (median)"),
    ("loss", "loss (median)", "loss at the tuned lr"),
)


def styles(optimizers: Sequence[str]) -> dict[str, tuple[str, str]]:
    """(colour, marker) per optimizer: `STYLES`, then, for a name no recipe has
    any more, the next pair no other optimizer has, in the order given."""
    colours = ("tab:gray", "black", *(f"C{i}" for i in range(10)))
    pairs = itertools.product(colours, "Xd*hp<>")
    spare = (style for style in pairs if style not in STYLES.values())
    return {o: STYLES[o] if o in STYLES else next(spare) for o in optimizers}


def plot(sweep: Sweep, problem: str, path: pathlib.Path) -> None:
    """Median error (min-max bars) against depth: protocols x initialisations."""
    style = styles(sweep.optimizers)  # the same in every panel
    shape = (len(results.PROTOCOLS), len(sweep.inits))
    fig = Figure(figsize=(5.5 * shape[1], 4 * shape[0]))
    axes = fig.subplots(*shape, squeeze=False, sharey=True)
    drawn = {}  # the first handle of each optimizer, for one legend
    panels = itertools.product(results.PROTOCOLS, sweep.inits)  # as in axes.flat
    for ax, (protocol, init) in zip(axes.flat, panels, strict=True):
        for opt in sweep.optimizers:
            found = [
                (d, s)
                for d in sweep.depths
                if (s := sweep.summary(protocol, problem, init, opt, d)) and s["n"]
            ]
            if not found:
                continue
            depths, found = zip(*found, strict=True)
            low, median, high = (
                [min(s[k], 10.0) for s in found] for k in ("min", "median", "max")
            )
            yerr = [np.subtract(median, low), np.subtract(high, median)]
            color, marker = style[opt]
            line = dict(marker=marker, capsize=3, label=opt, color=color)
            drawn.setdefault(opt, ax.errorbar(depths, median, yerr, **line))
        ax.axhline(results.TRAINED, color="grey", lw=0.8, ls=":")
        title = f"{problem}, {init} init, {protocol} lr"
        ax.set(xscale="log", yscale="log", xlabel="hidden layers", title=title)
        ax.set_xticks(sweep.depths, [str(d) for d in sweep.depths])
        ax.minorticks_off()
        if init == sweep.inits[0]:
            ax.set_ylabel("final relative L2 (median, min-max)")
    order = [o for o in sweep.optimizers if o in drawn]
    axes[0, 0].legend([drawn[o] for o in order], order, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _series(record: dict, name: str) -> list | None:
    """``record[name]``, where "a/b" reads ``record["a"]["b"]``; None if absent."""
    for part in name.split("/"):
        if not isinstance(record, dict) or part not in record:
            return None
        record = record[part]
    return record


def curves(sweep: Sweep, history: dict, depth: int, panels=HISTORY) -> dict:
    """(problem, init, optimizer) -> per-step medians of the `panels`' names over
    the reported seeds at the tuned lr, of the runs whose history holds them all."""
    names, found = [name for name, _, _ in panels], {}
    for group in itertools.product(sweep.problems, sweep.inits, sweep.optimizers):
        if (lr := sweep.lr("tuned", *group, depth)) is None:
            continue
        runs = [
            {"step": record["step"], **{name: _series(record, name) for name in names}}
            for r in sweep.runs_of(*group, depth=depth, lr=lr)
            if not sweep.tuning(r) and (record := history.get(results.run_key(r)))
        ]
        runs = [run for run in runs if all(run[name] is not None for name in names)]
        if runs:  # each name's median over the runs, step by step
            found[group] = {"step": runs[0]["step"], "seeds": len(runs)}
            for n in names:
                series = zip(*(r[n] for r in runs), strict=True)
                found[group][n] = [statistics.median(v) for v in series]
    return found


def medians_at(depth: int) -> str:
    return f"per-step medians at depth {depth} over the reported seeds at the tuned lr"


def history_note(sweep: Sweep, history: dict, depth: int) -> str:
    """What the history figure shows, and which runs have no per-step history."""
    missing = collections.Counter(
        (r["problem"], r["init"], r["optimizer"])
        for r in sweep.rows
        if results.run_key(r) not in history
    )
    text = (
        f"`pinn_depth_sweep_history.png`: {medians_at(depth)} (solid: the critical "
        f"init; dashed: the others). {len(sweep.rows) - sum(missing.values())} of "
        f"{len(sweep.rows)} runs have a per-step history in "
        "`pinn_depth_sweep_history.jsonl`"
    )
    if missing:
        groups = "; ".join(f"{' '.join(g)}: {n}" for g, n in sorted(missing.items()))
        text += f"; runs without one are not drawn ({groups})"
    return text + "."


def reference_note(found: dict, depth: int) -> str:
    """What the reference figure shows (`found`: `curves` of `REFERENCE`)."""
    runs = sum(curve["seeds"] for curve in found.values())
    return (
        "`pinn_depth_sweep_reference.png`: the prediction reference (the std each "
        "layer's gradient is rescaled to) in its data reading (the std of dL/du at "
        "the boundary and initial points, logged by every run with a prediction "
        "reference, whichever reading it steps with) beside the loss: "
        f"{medians_at(depth)} ({runs} runs in {len(found)} problem x init x "
        "optimizer groups)."
    )


def plot_curves(sweep: Sweep, found: dict, depth: int, path, panels=HISTORY) -> None:
    """Per-step `curves` at one depth, a row per problem and a column per panel;
    solid: the critical init, dashed: others."""
    style = styles(sweep.optimizers)
    problems = [p for p in sweep.problems if any(k[0] == p for k in found)]
    fig = Figure(figsize=(5.5 * len(panels), 3.6 * len(problems)))
    axes = fig.subplots(len(problems), len(panels), squeeze=False)
    for row, problem in enumerate(problems):
        for opt, init in itertools.product(sweep.optimizers, sweep.inits):
            if (curve := found.get((problem, init, opt))) is None:
                continue
            for ax, (name, _, _) in zip(axes[row], panels, strict=True):
                ax.plot(
                    curve["step"],
                    curve[name],
                    ls="-" if init == "critical" else "--",
                    color=style[opt][0],
                    marker=style[opt][1],
                    markevery=max(1, len(curve["step"]) // 6),
                    markersize=4,
                    label=f"{opt}, {init} ({curve['seeds']} seeds)",
                )
        for ax, (_, ylabel, title) in zip(axes[row], panels, strict=True):
            heading = f"{problem}, depth {depth}: {title}"
            ax.set(yscale="log", xlabel="step", ylabel=ylabel, title=heading)
        axes[row, -1].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


plot_reference = functools.partial(plot_curves, panels=REFERENCE)


def drawings(sweep: Sweep, history: dict) -> tuple[dict[str, Callable], list[str]]:
    """{file name: draw(path)} of the figures, and the notes on those drawn from
    the histories (where runs have one)."""
    drawn = {
        f"pinn_depth_sweep_{p}.png": functools.partial(plot, sweep, p)
        for p in sweep.problems
    }
    notes = []
    deepest = sweep.depths[-1]
    if found := curves(sweep, history, deepest):
        drawn["pinn_depth_sweep_history.png"] = functools.partial(
            plot_curves, sweep, found, deepest
        )
        notes.append(history_note(sweep, history, deepest))
    # The reference at the depth that picks the fixed protocol's lr.
    if found := curves(sweep, history, sweep.tune_depth, REFERENCE):
        drawn["pinn_depth_sweep_reference.png"] = functools.partial(
            plot_reference, sweep, found, sweep.tune_depth
        )
        notes.append(reference_note(found, sweep.tune_depth))
    return drawn, notes
