"""What a run writes: results.json, table.md and the PNG figures."""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
from typing import Any

import jax
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

FIGURES = ("curves.png", "fields.png", "gradient_std.png")


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
    return f"{value:.3g}" if math.isfinite(value) else "nan"


def chosen_runs(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each optimizer's run at its chosen learning rate."""
    return {
        name: next(
            r
            for r in runs
            if r["learning_rate"] == results["chosen_learning_rate"][name]
        )
        for name, runs in results["runs"].items()
    }


def results_table(results: dict[str, Any]) -> str:
    """Markdown: one row per optimizer at its chosen learning rate."""
    chosen = chosen_runs(results)
    terms = list(next(iter(chosen.values()))["final_terms"])
    lines = [
        "| optimizer | lr (grid) | "
        + " | ".join(f"final {t}" for t in terms)
        + " | final rel-L2 | best rel-L2 | ms/step |",
        "|---|---|" + "---|" * len(terms) + "---|---|---|",
    ]
    for name, run in chosen.items():
        grid = [r["learning_rate"] for r in results["runs"][name]]
        lr = f"{run['learning_rate']:g}"
        if len(grid) > 1:
            lr += " (" + ", ".join(f"{g:g}" for g in grid) + ")"
        if run["diverged"]:
            lr += ", diverged"
        cells = [_fmt(run["final_terms"][t]) for t in terms]
        cells += [_fmt(run["final_rel_l2"]), _fmt(run["best_rel_l2"])]
        cells.append(f"{1e3 * run['time_per_step_s']:.0f}")
        lines.append(f"| {name} | {lr} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _figure(ncols: int, nrows: int = 1, width: float = 4.2, height: float = 3.6):
    fig = Figure(figsize=(width * ncols, height * nrows))
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, squeeze=False)


def plot_curves(results: dict[str, Any], path: pathlib.Path) -> None:
    """Loss, relative L2 error and gradient-std imbalance against step."""
    fig, axes = _figure(3)
    ylabels = ("loss (chunk mean)", "relative L2 error", "gradient-std imbalance")
    for name, run in chosen_runs(results).items():
        steps = [r["step"] for r in run["records"]]
        label = f"{name} (lr {run['learning_rate']:g})"
        for ax, key in zip(axes[0], ("loss", "rel_l2", "imbalance"), strict=True):
            values = [r[key] for r in run["records"]]
            ax.plot(steps, np.asarray(values, np.float64), label=label)
    for ax, ylabel in zip(axes[0], ylabels, strict=True):
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
    axes[0, 2].set_title("max / min per-layer grad std", fontsize="small")
    axes[0, 0].legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def plot_fields(
    problem, predictions: dict[str, jax.Array], resolution: int, path: pathlib.Path
) -> None:
    """The reference solution, each optimizer's prediction and its error."""
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
        prediction = np.asarray(prediction).reshape(shape)
        show(axes[0, i], prediction, f"{name}: prediction", **limits)
        error = np.abs(prediction - reference)
        show(axes[1, i], error, f"{name}: |error|", cmap="magma")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def plot_gradient_std(results: dict[str, Any], path: pathlib.Path) -> None:
    """Per-layer gradient std before and after StableGrad, at init and at the end."""
    profiles = results["gradient_std"]
    fig, axes = _figure(2, width=5.2)
    init = profiles["init"]
    depth = results["config"]["depth"]
    layers = [f"hidden_{i}" for i in range(depth)] + ["head"]  # network order
    index = np.arange(len(layers))
    axes[0, 0].plot(index, [init["raw"][k] for k in layers], "o-", label="gradient")
    axes[0, 0].plot(
        index, [init["stablegrad"][k] for k in layers], "s--", label="after StableGrad"
    )
    axes[0, 0].set_title("at initialisation", fontsize="small")
    for name in results["runs"]:
        line = axes[0, 1].plot(
            index, [profiles[name]["raw"][k] for k in layers], "o-", ms=3, label=name
        )
        axes[0, 1].plot(
            index,
            [profiles[name]["stablegrad"][k] for k in layers],
            "--",
            color=line[0].get_color(),
        )
    axes[0, 1].set_title(
        "after training (solid: gradient, dashed: after StableGrad)", fontsize="small"
    )
    for ax in axes[0]:
        ax.set_yscale("log")
        ax.set_xlabel(f"layer (0 = {layers[0]}, {len(layers) - 1} = {layers[-1]})")
        ax.set_ylabel("per-layer weight-gradient std")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


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
        f"{config['activation']}, {config['init']} init, {config['steps']} steps of "
        f"{config['num_interior']} + {config['num_boundary']} points, seed "
        f"{config['seed']}. Final loss terms: mean over the last "
        f"{config['log_every']} steps; ms/step: compilation excluded. Training "
        f"and evaluation took {meta['total_time_s']:.0f} s in all."
    )
    table = results_table(results)
    (outdir / "table.md").write_text(
        f"Command: `{meta['command']}`  \nDevice: {meta['device']}  \n"
        f"Date: {meta['date']}; git {meta['git_commit']}; jax {meta['jax']}, "
        f"optax {meta['optax']}\n\n{summary}\n\n{table}\n"
    )
    plot_curves(results, outdir / "curves.png")
    plot_fields(problem, predictions, config["eval_resolution"], outdir / "fields.png")
    plot_gradient_std(results, outdir / "gradient_std.png")
    print(f"\n{summary}\n{table}\n\nWrote results.json, table.md, ", end="")
    print(f"{', '.join(FIGURES)} to {outdir}")
