"""The DeepXDE example's table and figures, from its results."""

from __future__ import annotations

import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _num(value) -> str:
    return "diverged" if value is None else f"{value:.3g}"


def table(results: dict) -> str:
    meta, runs = results["meta"], results["runs"]
    s = meta["settings"]
    lines = [
        "# StableGrad in DeepXDE (JAX backend)",
        "",
        f"`{meta['command']}` on {meta['device']}, {meta['date']}, commit "
        f"{meta['git_commit']}; deepxde {meta['deepxde']}, jax {meta['jax']}.",
        f"tanh FNN of width {s['width']}, Glorot normal init, {s['iterations']} "
        f"iterations, {s['num_domain']} domain + {s['num_boundary']} boundary "
        f"(+ {s['num_initial']} initial for Burgers) fixed points, seed {s['seed']} "
        "(the same initial network and points for every optimizer). Learning "
        f"rate: the grid point with the lowest training loss after "
        f"{s['pick_iterations']} iterations (↑/↓: the top/bottom of the grid).",
        "",
        "| problem | depth | optimizer | lr (grid: short-run loss) | final train loss "
        "| rel-L2 | s / 1000 it |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        grid = ", ".join(f"{k}: {_num(v)}" for k, v in r["grid_losses"].items())
        edge = list(r["grid_losses"])
        mark = {edge[0]: "↓", edge[-1]: "↑"}.get(f"{r['lr']:g}", "") if edge else ""
        per_k = 1000 * r["seconds"] / max(r["loss_curve"]["steps"][-1], 1)
        lines.append(
            f"| {r['problem']} | {r['depth']} | {r['optimizer']} | {r['lr']:g}{mark} "
            f"({grid}) | {_num(r['final_loss'])} | {_num(r['rel_l2'])} | {per_k:.0f} |"
        )
    return "\n".join(lines) + "\n"


def plot_losses(results: dict, path: pathlib.Path) -> None:
    cells = sorted({(r["problem"], r["depth"]) for r in results["runs"]})
    fig, axes = plt.subplots(1, len(cells), figsize=(4.5 * len(cells), 3.6))
    axes = [axes] if len(cells) == 1 else list(axes)
    for ax, (problem, depth) in zip(axes, cells, strict=True):
        for r in results["runs"]:
            if (r["problem"], r["depth"]) == (problem, depth):
                curve = r["loss_curve"]
                ax.semilogy(
                    curve["steps"], curve["loss"], label=f"{r['optimizer']} {r['lr']:g}"
                )
        ax.set(title=f"{problem}, depth {depth}", xlabel="iteration")
        ax.legend(fontsize=7)
    axes[0].set_ylabel("training loss (sum of terms)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_layer_std(results: dict, path: pathlib.Path) -> None:
    """Per-layer gradient std seen by StableGrad + Adam over training."""
    runs = [r for r in results["runs"] if r["layer_std"] and "adam" in r["optimizer"]]
    if not runs:
        return
    fig, axes = plt.subplots(1, len(runs), figsize=(4.5 * len(runs), 3.6))
    axes = [axes] if len(runs) == 1 else list(axes)
    for ax, r in zip(axes, runs, strict=True):
        steps = [rec["step"] for rec in r["layer_std"]]
        names = list(r["layer_std"][0]["std"])
        for name in names:
            ax.semilogy(steps, [rec["std"][name] for rec in r["layer_std"]], lw=0.8)
        ax.set(title=f"{r['problem']}, depth {r['depth']}", xlabel="iteration")
    axes[0].set_ylabel("per-layer weight-gradient std")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(results: dict, outdir: pathlib.Path) -> None:
    (outdir / "results.md").write_text(table(results))
    plot_losses(results, outdir / "losses.png")
    plot_layer_std(results, outdir / "layer_std.png")
