"""Tables and the performance results page, from overhead_<platform>.json.

  python benchmarks/overhead_report.py            # write overhead.md and the page
  python benchmarks/overhead_report.py --check    # both up to date?

Every number comes from the JSON files that ``overhead.py`` writes (one per
platform: ``overhead_cpu.json``, ``overhead_gpu.json``): the full tables go to
``overhead.md`` beside them, the summary to the docs page
``docs/results/performance.md`` ("Results: performance").
"""

from __future__ import annotations

import json
import pathlib
import shlex
import sys
from collections.abc import Sequence
from typing import Any

import mdtables

RESULTS = mdtables.ROOT / "benchmarks" / "results"
SCRIPT = "benchmarks/overhead_report.py"
TITLE = "# Results: performance"
PLATFORMS = ("cpu", "gpu", "tpu")
TREE_TITLES = {
    "resnet50": "ResNet-50 tree",
    "mlp64": "64-layer MLP",
    "transformer_bf16": "transformer, bf16",
}
STEP_TITLES = {
    "pinn32": "PINN depth 32, train step",
    "resnet50_bs256": "ResNet-50 bs256, train step",
}
TRAIN_STEP_TITLES = {
    "pinn32": "PINN Poisson, depth 32, width 50, 256 + 256 points",
    "resnet18_w16": "BN-free ResNet-18 width 16, 32x32x3, batch 32",
}
PAPER, OUTPUT = "stablegrad(prediction)+adam", "stablegrad(output)+adam"
# Targets of issue #8 (ratios to adam), and of the paper's variant (its step
# over the output-reference step).
UPDATE_TARGET, PINN_TARGET, RESNET_TARGET = 1.05, 1.02, 1.01
PAPER_TARGET = 1.02


def load(results: pathlib.Path) -> dict[str, dict[str, Any]]:
    """{platform: results} for each overhead_<platform>.json present."""
    found = {}
    for name in PLATFORMS:
        path = results / f"overhead_{name}.json"
        if path.exists():
            found[name] = json.loads(path.read_text())
    return found


def _ratio(entry: dict[str, Any] | None, prefix: str | None = None) -> str:
    """Median ratio and, in brackets, the range of per-round ratios.

    To adam (2 decimals); with a `prefix` ("" wall clock, "cpu_" CPU time), of
    one step over another (`prediction_over_output`, 3 decimals).
    """
    if entry is None:
        return "—"
    p, digits = ("", 2) if prefix is None else (prefix, 3)
    median = entry["ratio_to_adam"] if prefix is None else entry[p + "ratio"]
    low, high = entry[p + "round_ratio_min"], entry[p + "round_ratio_max"]
    return f"{median:.{digits}f}x ({low:.{digits}f}–{high:.{digits}f})"


def _provenance(run: dict[str, Any], command: str | None = None) -> str:
    """Command (`command` if given), device, date, commit, rounds, wall time."""
    meta = run["meta"]
    return (
        f"`{command or meta['command']}`, {meta['device']}, {meta['date'][:10]}, "
        f"git {meta['git_commit']}, jax {meta['jax']}; {run['config']['rounds']} "
        f"interleaved rounds, {run['wall_time_s']:.0f} s"
    )


def _remarks(meta: dict[str, Any]) -> list[str]:
    """What a run's CPU affinity means for its numbers (if it was pinned), and
    its ``--note`` (if any)."""
    affinity, count = meta.get("cpu_affinity"), meta.get("cpu_count")
    remarks = [meta["note"]] if meta.get("note") else []
    if not affinity or count is None or len(affinity) >= count:
        return remarks
    cores = ", ".join(str(c) for c in affinity)
    threads = "one thread" if len(affinity) == 1 else f"{len(affinity)} threads"
    pinning = (
        f"The process was pinned to core {cores} of {count} (`taskset`); XLA:CPU "
        f"sizes its thread pool to the cores a process may use, so every kernel "
        f"ran on {threads}. These are single-threaded ratios: with more threads "
        "(or on a GPU) the large kernels (matmuls, convolutions) get faster while "
        "small ones (the std of the prediction gradient, per-leaf optimizer work) "
        "hardly do, so the ratios there can differ; the absolute times are one "
        "core's, not the machine's."
    )
    return [pinning, *remarks]


def _paper_verdict(ratio: dict[str, Any]) -> str:
    wall, cpu = ratio["ratio"] <= PAPER_TARGET, ratio["cpu_ratio"] <= PAPER_TARGET
    if wall and cpu:
        return "met"
    if wall or cpu:
        return f"met by {'wall clock' if wall else 'CPU time'} only"
    return "not met"


def train_step_lines(platform: str, section: dict[str, Any]) -> list[str]:
    """The page's table of the paper's variant against the output reference."""
    body, verdicts = [], []
    for name, model in section["models"].items():
        entries, ratio = model["entries"], model["prediction_over_output"]
        title = TRAIN_STEP_TITLES.get(name, name)
        body.append(
            [
                title,
                _ratio(ratio, ""),
                _ratio(ratio, "cpu_"),
                _ratio(entries[PAPER]),
                _ratio(entries[OUTPUT]),
                f"{entries['adam']['median_s'] * 1e3:.2f}",
            ]
        )
        cost = ratio["xla_cost"]
        verdicts.append(
            f"* {title}, {platform}: prediction step / output step "
            f"{ratio['ratio']:.3f}x wall clock, {ratio['cpu_ratio']:.3f}x CPU time "
            f"(target <= {PAPER_TARGET:.2f}x): {_paper_verdict(ratio)}. XLA's cost "
            "model of the compiled step, prediction over output: flops "
            f"{cost['flops']:.5f}x, bytes accessed {cost['bytes_accessed']:.5f}x."
        )
    header = [
        "model",
        "prediction step / output step",
        "the same, CPU time",
        f"`{PAPER}` / adam",
        f"`{OUTPUT}` / adam",
        "adam (ms/step)",
    ]
    meta = section["meta"]
    command = meta["command"]
    if meta.get("note"):  # printed below the table; overhead.md has the whole command
        command = command.replace(shlex.quote(meta["note"]), "<the note below>")
    return [
        f"**Train step: the paper's variant against the output reference, "
        f"{platform.upper()}** ({_provenance(section, command)}). The prediction "
        'step is `sgo.prediction_value_and_grad` + `stablegrad("prediction")` + '
        'Adam (the PINN through `pinn.make_chunk(..., prediction_reference="data")`'
        ", which also logs three readings of the reference); the output step is "
        '`jax.value_and_grad` + `stablegrad("output")` + Adam. Median ratio of '
        "the per-step wall-clock times; in brackets the range of the per-round "
        "ratios. CPU time: the same from the process's CPU time (all its "
        "threads), which leaves out the time other processes held the core.",
        "",
        *mdtables.table(header, body),
        "",
        *verdicts,
        *(line for remark in _remarks(meta) for line in ("", remark)),
        "",
    ]


def ratio_table(run: dict[str, Any]) -> list[str]:
    """Every timed entry's ratio to adam: a column per tree's update (and the
    ResNet-50 tree's jit call) and per model step."""
    columns = []
    for name, tree in run["trees"].items():
        title = TREE_TITLES.get(name, name)
        columns.append((f"{title}: update", tree["update_loop"]))
        if name == "resnet50":
            columns.append((f"{title}: update, jit call", tree["update_call"]))
    for name, section in run["model_steps"].items():
        columns.append((STEP_TITLES.get(name, name), section))
    labels = list(dict.fromkeys(k for _, s in columns for k in s["entries"]))
    body = [
        [f"`{label}`"] + [_ratio(s["entries"].get(label)) for _, s in columns]
        for label in labels
    ]
    return mdtables.table(["ratio to adam", *(t for t, _ in columns)], body)


def hlo_lines(run: dict[str, Any]) -> list[str]:
    lines = []
    for name, tree in run["trees"].items():
        hlo = tree["hlo"]
        counts = hlo["entry_counts"]
        added = counts["stablegrad+adam"]["fusions"] - counts["adam"]["fusions"]
        parts = []
        if hlo["large_leaves"]:
            parts.append(
                f"each of the {hlo['large_leaves']} large weight leaves is read by "
                f"at most {hlo['large_max_reductions']} reductions and "
                f"{hlo['large_max_elementwise']} elementwise kernels "
                f"({hlo['large_stacked']} copied into a stack)"
            )
        if hlo["small_leaves"]:
            parts.append(
                f"{hlo['small_stacked']} of the {hlo['small_leaves']} small weight "
                "leaves are stacked with their same-shaped peers"
            )
        text = (
            f"* {TREE_TITLES.get(name, name)} ({tree['num_leaves']} leaves, "
            f"{tree['num_params']:,} parameters, {tree['dtype']}): "
            + "; ".join(parts)
            + f". `stablegrad` adds {added} kernels to adam's "
            f"{counts['adam']['fusions']}."
        )
        if hlo["float32_temporaries"] is not None:
            text += (
                f" Float32 arrays written from the bf16 gradients: "
                f"{hlo['float32_temporaries']} (a conversion kernel per leaf, "
                "which the reductions then read)."
            )
        lines.append(text)
    return lines


def verdict(platform: str, run: dict[str, Any]) -> list[str]:
    """The targets of issue #8 against this platform's medians."""
    out = []
    trees, steps = run["trees"], run["model_steps"]
    if "resnet50" in trees:
        entries = trees["resnet50"]["update_loop"]["entries"]
        ours = entries["stablegrad+adam"]["ratio_to_adam"]
        agc = entries.get("adaptive_grad_clip+adam", {}).get("ratio_to_adam")
        met = ours <= UPDATE_TARGET and (agc is None or ours < agc)
        peer = "" if agc is None else f", adaptive_grad_clip+adam {agc:.2f}x"
        out.append(
            f"* Update alone, ResNet-50 tree, {platform}: stablegrad+adam "
            f"{ours:.2f}x{peer} (target <= {UPDATE_TARGET:.2f}x and below "
            f"adaptive_grad_clip): {'met' if met else 'not met'}."
        )
        call = trees["resnet50"]["update_call"]["entries"]
        out.append(
            f"* The same update as a jit call from Python: stablegrad+adam "
            f"{_ratio(call['stablegrad+adam'])}, adaptive_grad_clip+adam "
            f"{_ratio(call.get('adaptive_grad_clip+adam'))}."
        )
    if "transformer_bf16" in trees:
        hlo = trees["transformer_bf16"]["hlo"]
        met = "met" if hlo["float32_temporaries"] == 0 else "not met"
        out.append(
            f"* bf16 statistics without a float32 copy, {platform}: "
            f"{hlo['float32_temporaries']} float32 copies (target 0): {met}."
        )
    for name, target in (("pinn32", PINN_TARGET), ("resnet50_bs256", RESNET_TARGET)):
        if name in steps:
            ours = steps[name]["entries"]["stablegrad+adam"]
            met = "met" if ours["ratio_to_adam"] <= target else "not met"
            out.append(
                f"* {STEP_TITLES[name]}, {platform}: stablegrad+adam "
                f"{_ratio(ours)} (target <= {target:.2f}x): {met}."
            )
    out.append(
        f"* XLA compilations during the timed rounds: "
        f"{run['compiles_during_timing']} (no retrace between steps)."
    )
    return out


def platform_lines(platform: str, run: dict[str, Any]) -> list[str]:
    """The page's ratio table, HLO notes and verdicts of one platform."""
    return [
        f"**{platform.upper()}** ({_provenance(run)}). Median ratio of the "
        "per-step time to `optax.adam`'s in the same rounds; in brackets the "
        "range of the per-round ratios. `update` = the update alone, repeated "
        "inside one compiled loop; `jit call` = `jax.jit(tx.update)` called "
        "from Python.",
        "",
        *ratio_table(run),
        "",
        "What XLA compiles for `stablegrad` alone (fast path):",
        "",
        *hlo_lines(run),
        "",
        "Against the targets:",
        "",
        *verdict(platform, run),
        "",
    ]


def page(runs: dict[str, dict[str, Any]]) -> str:
    """The docs page "Results: performance"; every number from the JSON files."""
    sources = [f"benchmarks/results/overhead_{platform}.json" for platform in runs]
    lines = [TITLE, "", *mdtables.generated(SCRIPT, sources), ""]
    lines += [
        "Tables for every tree, the kernel counts and XLA's cost model: "
        "`benchmarks/results/overhead.md`, written by the same command.",
        "",
    ]
    for platform, run in runs.items():
        if "trees" in run:
            lines += platform_lines(platform, run)
        if "train_steps" in run:
            lines += train_step_lines(platform, run["train_steps"])
    missing = [p for p in ("cpu", "gpu") if p not in runs]
    if missing:
        lines += [
            f"Not measured here: {', '.join(p.upper() for p in missing)} (no such "
            "device was available; run `python benchmarks/overhead.py` on one and "
            "then this report).",
            "",
        ]
    return "\n".join(lines)


def _section_table(section: dict[str, Any]) -> list[str]:
    body = [
        [
            f"`{label}`",
            f"{entry['median_s'] * 1e6:.0f}",
            _ratio(entry),
            str(entry["iters"]),
        ]
        for label, entry in section["entries"].items()
    ]
    return mdtables.table(["", "median (us)", "ratio to adam", "steps/round"], body)


def _timed(heading: str, section: dict[str, Any]) -> list[str]:
    """A timed section's heading and table, each followed by a blank line."""
    return [heading, "", *_section_table(section), ""]


def _losses(section: dict[str, Any]) -> str:
    losses = ", ".join(f"{k} {v:.4g}" for k, v in section["final_loss"].items())
    return f"Loss after the timed steps: {losses}."


def _meta_lines(run: dict[str, Any]) -> list[str]:
    """A run's (or a section's) provenance and compilations, one line each."""
    meta = run["meta"]
    affinity = meta.get("cpu_affinity")
    cores = "" if affinity is None else f"; CPU affinity {affinity}"
    return [
        f"Command: `{meta['command']}`  ",
        f"Device: {meta['device']} ({meta['jax_device']}){cores}  ",
        f"Date: {meta['date']}; git {meta['git_commit']}; jax {meta['jax']}, "
        f"jaxlib {meta['jaxlib']}, optax {meta['optax']}, python "
        f"{meta['python']}  ",
        f"Wall time: {run['wall_time_s']:.0f} s; XLA compilations during the timed "
        f"rounds: {run['compiles_during_timing']}",
    ]


def train_step_report(section: dict[str, Any]) -> list[str]:
    """overhead.md's part on the paper's variant against the output reference."""
    lines = [
        "### Train step: the paper's variant against the output reference",
        "",
        *_meta_lines(section),
        "",
        *(line for remark in _remarks(section["meta"]) for line in (remark, "")),
    ]
    for name, model in section["models"].items():
        ratio = model["prediction_over_output"]
        lines += [
            *_timed(f"#### {TRAIN_STEP_TITLES.get(name, name)}", model),
            f"`{PAPER}` / `{OUTPUT}`: {_ratio(ratio, '')}; by the process's CPU "
            f"time {_ratio(ratio, 'cpu_')}. {_losses(model)}",
            "",
            "XLA's cost model of one compiled call:",
            "",
            *mdtables.table(
                ["", "flops", "transcendentals", "bytes accessed"],
                [
                    [f"`{label}`"] + [f"{v:,.0f}" for v in cost.values()]
                    for label, cost in model["xla_cost_per_call"].items()
                ],
            ),
            "",
        ]
    return lines


def full_report(runs: dict[str, dict[str, Any]]) -> str:
    lines = ["# StableGrad overhead, as a ratio to optax.adam", ""]
    for platform, run in runs.items():
        lines += [f"## {platform.upper()}", ""]
        if "train_steps" in run:
            lines += train_step_report(run["train_steps"])
        if "trees" not in run:
            continue
        if "train_steps" in run:
            lines += ["**Updates and model steps:**", ""]
        lines += [*_meta_lines(run), ""]
        for name, tree in run["trees"].items():
            lines += [
                f"### {TREE_TITLES.get(name, name)}: {tree['description']}",
                "",
                f"{tree['num_leaves']} leaves, {tree['num_params']:,} parameters.",
                "",
            ]
            for key, title in (
                ("update_loop", "update, compiled loop"),
                ("update_call", "update, jit call"),
            ):
                lines += [f"{title}:", "", *_section_table(tree[key]), ""]
            if "fallback_check" in tree:
                error = tree["fallback_check"]["stats_ratio_over_1e-30_max_rel_err"]
                lines += [
                    "1e-30 gradients (careful path): statistics equal 1e-30 x the "
                    f"normal ones to {error:.1e} relative.",
                    "",
                ]
            counts = tree["hlo"]["entry_counts"]
            lines += [
                "Kernels in each compiled update (ENTRY computation):",
                "",
                *mdtables.table(
                    ["", "kernels", "with a reduction", "in the loop body"],
                    [
                        [
                            f"`{label}`",
                            str(c["fusions"]),
                            str(c["reduction_fusions"]),
                            str(c["loop_body_fusions"]),
                        ]
                        for label, c in counts.items()
                    ],
                ),
                "",
            ]
        for name, section in run["model_steps"].items():
            title = f"### {STEP_TITLES.get(name, name)}"
            lines += [*_timed(title, section), _losses(section), ""]
        lines += ["### What XLA compiles for `stablegrad` alone", ""]
        lines += [*hlo_lines(run), ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = mdtables.parser(__doc__, RESULTS, "performance.md", "overhead.md")
    args = parser.parse_args(argv)
    runs = load(args.results)
    if not runs:
        print(f"no overhead_<platform>.json in {args.results}", file=sys.stderr)
        return 1
    report_path = args.results / "overhead.md"
    outputs = {args.page: page(runs), report_path: full_report(runs)}
    return mdtables.check_or_write(outputs, args.check, SCRIPT, args.results)


if __name__ == "__main__":
    sys.exit(main())
