"""The results of a run: results.json, a markdown table and a loss plot."""

from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Any

HEADER = (
    "| variant | first non-finite step | train loss | test loss | test accuracy "
    "| s/step |"
)


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.3g}"


def table(runs: list[dict[str, Any]]) -> str:
    rows = [
        f"| {r['variant']} | {r['first_nonfinite_step'] or '–'} | "
        f"{_num(r['train_loss'])} | {_num(r['test_loss'])} | "
        f"{_num(r['test_accuracy'])} | {r['seconds_per_step']:.3f} |"
        for r in runs
    ]
    return "\n".join([HEADER, "|---|---|---|---|---|---|", *rows])


def plot(config, runs: list[dict[str, Any]], path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for run in runs:
        losses = run["loss_per_chunk"]
        steps = [config.log_every * (i + 1) for i in range(len(losses))]
        finite = [(s, v) for s, v in zip(steps, losses, strict=True) if v is not None]
        label = run["variant"]
        if run["first_nonfinite_step"]:
            label += f" (NaN at step {run['first_nonfinite_step']})"
        xs, ys = zip(*finite, strict=True) if finite else ((), ())
        ax.plot(xs, ys, marker=".", label=label)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(f"train minibatch loss (mean of {config.log_every} steps)")
    ax.set_title(f"{config.model} (width {config.width}) on {config.dataset}, SGD "
                 f"{config.learning_rate}", fontsize=9)  # fmt: skip
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write(config, data, runs: list[dict[str, Any]], outdir, meta) -> dict[str, Any]:
    """Writes results.json, results.md and loss.png into `outdir`; returns the dict.

    `meta` is `run_metadata()` as taken when the run started.
    """
    outdir = pathlib.Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    config_dict = {
        k: v for k, v in dataclasses.asdict(config).items() if k != "progress"
    }
    results = {
        "config": config_dict,
        "data": {"train": len(data.train_labels), "test": len(data.test_labels)},
        "meta": meta,
        "runs": runs,
    }
    (outdir / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    meta = results["meta"]
    text = table(runs)
    (outdir / "results.md").write_text(
        f"# BN-free {config.model} (width {config.width}) on {config.dataset}\n\n"
        f"SGD lr {config.learning_rate}, momentum {config.momentum}, weight decay "
        f"{config.weight_decay}; {config.steps} steps of batch {config.batch_size}, "
        f"seed {config.seed}.\n\n{text}\n\n"
        f"Device: {meta['device']}; date {meta['date']}; git {meta['git_commit']}; "
        f"command: `{meta['command']}`. s/step excludes compilation.\n\n"
        "![loss](loss.png)\n"
    )
    plot(config, runs, outdir / "loss.png")
    print(text)
    print(f"wrote {outdir}/results.json, results.md, loss.png")
    return results
