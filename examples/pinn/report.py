"""What a run writes: results.json, table.md and the PNG figures."""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import statistics
from typing import Any

import jax
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

FIGURES = ("curves.png", "fields.png")
DASHES = ("-", "--", ":")  # the loss weights' line styles, by term


def config_dict(config) -> dict[str, Any]:
    return {k: v for k, v in dataclasses.asdict(config).items() if k != "progress"}


def _json_safe(value):
    """NaN and Inf become None (JSON has neither); tuples become lists."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _fmt(value: float) -> str:
    return f"{value:.2g}" if math.isfinite(value) else "nan"


def _rank(value: float) -> float:
    """A final error to sort by: NaN (a diverged seed) counts as the worst."""
    return value if math.isfinite(value) else math.inf


def _median(values) -> float:
    """The median, NaN counted as the worst value."""
    return statistics.median(map(_rank, values))


def _below(values, threshold: float) -> str:
    return f"{sum(v < threshold for v in values)}/{len(values)}"


def _summary(values, threshold: float) -> str:
    """'median (min-max), k/n below' of final errors."""
    spread = f"{_fmt(min(values, key=_rank))}-{_fmt(max(values, key=_rank))}"
    return f"{_fmt(_median(values))} ({spread}), {_below(values, threshold)}"


def results_table(results: dict[str, Any]) -> str:
    """Markdown: one row per recipe, its seeds' errors beside the campaign's."""
    config = results["config"]
    threshold, seeds = config["threshold"], config["seeds"]
    campaign = results["campaign"]
    lines = [
        f"| recipe | final rel-L2, seeds {', '.join(map(str, seeds))} | median "
        f"| below {threshold:g} | best rel-L2 (median) | ms/step "
        f"| campaign, 20,000 steps: median (range), below {threshold:g} |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, run in results["runs"].items():
        final = run["final_rel_l2"]
        reference = campaign.get(name)
        cells = [
            " / ".join(_fmt(v) for v in final),
            _fmt(_median(final)),
            _below(final, threshold),
            _fmt(_median(run["best_rel_l2"])),
            f"{1e3 * run['time_per_step_s']:.0f}",
            _summary(reference, threshold) if reference else "not run",
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _figure(ncols: int, nrows: int = 1, width: float = 4.2, height: float = 3.6):
    fig = Figure(figsize=(width * ncols, height * nrows))
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, squeeze=False)


def plot_curves(results: dict[str, Any], path: pathlib.Path) -> None:
    """Per seed against step: relative L2 error, loss and the loss weights."""
    fig, axes = _figure(3)
    colours = {name: f"C{i}" for i, name in enumerate(results["runs"])}
    for name, run in results["runs"].items():
        records = run["records"]
        steps = [r["step"] for r in records]
        for seed in range(len(records[-1]["rel_l2"])):
            style = {"color": colours[name], "alpha": 0.8, "lw": 1.2}
            label = name if seed == 0 else None
            for ax, key in zip(axes[0, :2], ("rel_l2", "loss"), strict=True):
                values = [r[key][seed] for r in records]
                ax.plot(steps, np.asarray(values, np.float64), label=label, **style)
            for term, dash in zip(
                records[-1].get("loss_weights", {}), DASHES, strict=False
            ):
                weights = [r["loss_weights"][term][seed] for r in records]
                axes[0, 2].plot(steps, weights, dash, **style)
    last = next(iter(results["runs"].values()))["records"][-1]
    terms = zip(last.get("loss_weights", {}), DASHES, strict=False)
    terms = ", ".join(f"{term} {dash}" for term, dash in terms) or "fixed"
    titles = ("relative L2 error", "loss (chunk mean)", f"loss weights ({terms})")
    for ax, title in zip(axes[0], titles, strict=True):
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_title(title, fontsize="small")
        ax.grid(True, which="both", alpha=0.3)
    axes[0, 0].legend(fontsize="x-small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def plot_fields(
    problem, predictions: dict[str, jax.Array], results, path: pathlib.Path
) -> None:
    """The reference solution, and per recipe its median seed's prediction and
    error."""
    resolution = results["config"]["eval_resolution"]
    shape = (resolution, resolution)
    reference = np.asarray(problem.reference_on_grid(resolution)).reshape(shape)
    extent = (problem.lower[0], problem.upper[0], problem.lower[1], problem.upper[1])
    fig, axes = _figure(1 + len(predictions), 2, width=3.4, height=3.0)

    def show(ax, field, title, **style):
        image = ax.imshow(field.T, origin="lower", extent=extent, **style)
        fig.colorbar(image, ax=ax)
        ax.set_title(title, fontsize="small")

    limits = {"vmin": reference.min(), "vmax": reference.max(), "cmap": "RdBu_r"}
    show(axes[0, 0], reference, "reference", **limits)
    axes[1, 0].axis("off")
    for i, (name, prediction) in enumerate(predictions.items(), start=1):
        final = results["runs"][name]["final_rel_l2"]
        order = np.argsort([_rank(v) for v in final])
        median = int(order[len(order) // 2])
        field = np.asarray(prediction[median]).reshape(shape)
        seed = results["config"]["seeds"][median]
        show(axes[0, i], field, f"{name}\nseed {seed}: prediction", **limits)
        show(axes[1, i], np.abs(field - reference), "|error|", cmap="magma")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def write(results, problem, predictions, outdir) -> None:
    """Writes results.json, table.md and the figures; prints the table."""
    outdir = pathlib.Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    (outdir / "results.json").write_text(
        json.dumps(_json_safe(results), indent=1) + "\n"
    )
    config, meta = results["config"], results["meta"]
    summary = (
        f"{config['problem']}, depth {config['depth']}, width {config['width']}, "
        f"{config['activation']}, {config['init']} init; {config['steps']} steps of "
        f"{config['num_interior']} + {config['num_boundary']} points resampled "
        f"every step, peak lr {config['learning_rate']:g}; seeds "
        f"{', '.join(map(str, config['seeds']))} trained together (ms/step: the "
        f"seeds together, compilation excluded). Training and evaluation took "
        f"{meta['total_time_s']:.0f} s in all."
    )
    table = results_table(results)
    (outdir / "table.md").write_text(
        f"Command: `{meta['command']}`  \nDevice: {meta['device']}  \n"
        f"Date: {meta['date']}; git {meta['git_commit']}; jax {meta['jax']}, "
        f"optax {meta['optax']}\n\n{summary}\n\n{table}\n"
    )
    plot_curves(results, outdir / "curves.png")
    plot_fields(problem, predictions, results, outdir / "fields.png")
    print(f"\n{summary}\n{table}\n\nWrote results.json, table.md, ", end="")
    print(f"{', '.join(FIGURES)} to {outdir}")
