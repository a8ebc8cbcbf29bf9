"""Tables and the performance results page, from overhead_<platform>.json.

  python benchmarks/overhead_report.py            # write overhead.md and the page
  python benchmarks/overhead_report.py --check    # both up to date?

Every number comes from the JSON that ``overhead.py`` writes per platform: the
full tables go to ``overhead.md`` beside it, the summary to the docs page.
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
METHOD = "../performance.md#what-the-benchmark-measures-and-how-to-rerun-it"
TREE_TITLES = {
    "resnet50": "ResNet-50 tree",
    "mlp64": "64-layer MLP",
    "transformer_bf16": "transformer, bf16",
}
TRAIN_STEP_TITLES = {
    "pinn32": "PINN Poisson, depth 32, width 50, 256 + 256 points",
    "resnet18_w16": "BN-free ResNet-18 width 16, 32x32x3, batch 32",
    "resnet50_bs256": "BN-free ResNet-50, 224x224x3, batch 256",
}
COMPILE_TITLES = {
    "mlp64": "64-layer MLP (a deep PINN)",
    "blocks48": "48 transformer-shaped blocks, d 256",
    "resnet50": "ResNet-50 tree",
}
SG, AGC = "stablegrad+adam", "adaptive_grad_clip+adam"
PAPER, OUTPUT = "stablegrad(prediction)+adam", "stablegrad(output)+adam"
# Targets of issue #8 (ratios to adam), and of the paper's variant (its step
# over the output-reference step).
UPDATE_TARGET, PINN_TARGET, RESNET_TARGET = 1.05, 1.02, 1.01
PAPER_TARGET = 1.02


def load(results: pathlib.Path) -> dict[str, dict[str, Any]]:
    """{platform: results} for each overhead_<platform>.json present."""
    paths = {name: results / f"overhead_{name}.json" for name in ("cpu", "gpu", "tpu")}
    return {name: json.loads(p.read_text()) for name, p in paths.items() if p.exists()}


def _ratio(entry: dict[str, Any] | None, prefix: str | None = None) -> str:
    """The ratio of median times to adam's (2 decimals) or, with a `prefix`
    ("" wall clock, "cpu_" CPU time), of one step's to another's (3 decimals),
    with the range of the per-round ratios."""
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
    """What pinning a run to some cores means for its numbers; its ``--note``."""
    affinity, count = meta.get("cpu_affinity"), meta.get("cpu_count")
    remarks = [meta["note"]] if meta.get("note") else []
    if not affinity or count is None or len(affinity) >= count:
        return remarks
    threads = "one thread" if len(affinity) == 1 else f"{len(affinity)} threads"
    pinning = (
        f"The process was pinned to core {', '.join(map(str, affinity))} of {count} "
        f"(`taskset`), so XLA:CPU ran every kernel on {threads}. With more threads "
        "(or on a GPU) large kernels (matmuls, convolutions) get faster while small "
        "ones (the std of the prediction gradient, per-leaf optimizer work) hardly "
        "do, so the ratios there can differ; the absolute times are one core's."
    )
    return [pinning, *remarks]


def train_step_lines(platform: str, section: dict[str, Any]) -> list[str]:
    """The page's table of the paper's variant against the output reference."""
    body, verdicts = [], []
    for name, model in section["models"].items():
        entries, ratio = model["entries"], model["prediction_over_output"]
        title, cost = TRAIN_STEP_TITLES.get(name, name), ratio["xla_cost"]
        ratios = [_ratio(ratio, ""), _ratio(ratio, "cpu_"), _ratio(entries[PAPER])]
        adam_ms = f"{entries['adam']['median_s'] * 1e3:.2f}"
        body.append([title, *ratios, _ratio(entries[OUTPUT]), adam_ms])
        wall, cpu = (ratio[k] <= PAPER_TARGET for k in ("ratio", "cpu_ratio"))
        only = "wall clock" if wall else "CPU time"
        met = ("met" if wall else "not met") if wall == cpu else f"met by {only} only"
        verdicts.append(
            f"* {title}, {platform}: prediction step / output step "
            f"{ratio['ratio']:.3f}x wall clock, {ratio['cpu_ratio']:.3f}x CPU time "
            f"(target <= {PAPER_TARGET:.2f}x): {met}. XLA's cost "
            "model of the compiled step, prediction over output: flops "
            f"{cost['flops']:.5f}x, bytes accessed {cost['bytes_accessed']:.5f}x."
        )
    header = ["model", "prediction step / output step", "the same, CPU time"]
    header += [f"`{PAPER}` / adam", f"`{OUTPUT}` / adam", "adam (ms/step)"]
    meta, command = section["meta"], section["meta"]["command"]
    if meta.get("note"):  # printed below the table; overhead.md has the whole command
        command = command.replace(shlex.quote(meta["note"]), "<the note below>")
    return [
        f"**Train step: the paper's variant against the output reference, "
        f"{platform.upper()}** ({_provenance(section, command)}). Prediction step: "
        '`sgo.prediction_value_and_grad` + `stablegrad("prediction")` + Adam (the '
        'PINN through `pinn.make_chunk(..., prediction_reference="data")`, which '
        "also logs three readings of the reference); output step: "
        '`jax.value_and_grad` + `stablegrad("output")` + Adam. CPU time: the same '
        "from the process's CPU time (all threads), which leaves out the time other "
        "processes held the core.",
        "",
        *mdtables.table(header, body),
        "",
        *verdicts,
        *(line for remark in _remarks(meta) for line in ("", remark)),
        "",
    ]


def ratio_table(run: dict[str, Any]) -> list[str]:
    """Every timed entry's ratio to adam: a column per tree's update (and the
    ResNet-50 tree's jit call)."""
    columns = []
    for name, tree in run["trees"].items():
        title = TREE_TITLES.get(name, name)
        columns.append((f"{title}: update", tree["update_loop"]))
        if name == "resnet50":
            columns.append((f"{title}: update, jit call", tree["update_call"]))
    labels = dict.fromkeys(k for _, s in columns for k in s["entries"])
    body = [
        [f"`{label}`"] + [_ratio(s["entries"].get(label)) for _, s in columns]
        for label in labels
    ]
    return mdtables.table(["ratio to adam", *(t for t, _ in columns)], body)


def hlo_lines(run: dict[str, Any]) -> list[str]:
    lines = []
    for name, tree in run["trees"].items():
        hlo, parts = tree["hlo"], []
        adam = hlo["entry_counts"]["adam"]["fusions"]
        added = hlo["entry_counts"][SG]["fusions"] - adam
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
        lines.append(
            f"* {TREE_TITLES.get(name, name)} ({tree['num_leaves']} leaves, "
            f"{tree['num_params']:,} parameters, {tree['dtype']}): "
            f"{'; '.join(parts)}. `stablegrad` adds {added} kernels to adam's {adam}."
        )
        if hlo["float32_temporaries"] is not None:
            lines[-1] += (
                f" Float32 arrays written from the bf16 gradients: "
                f"{hlo['float32_temporaries']} (a conversion kernel per leaf, "
                "which the reductions then read)."
            )
    return lines


def verdict(platform: str, run: dict[str, Any]) -> list[str]:
    """The targets of issue #8 against this platform's medians."""
    out = []
    trees, steps = run["trees"], run.get("train_steps", {}).get("models", {})
    if "resnet50" in trees:
        loop = trees["resnet50"]["update_loop"]["entries"]
        call = trees["resnet50"]["update_call"]["entries"]
        ours, agc = loop[SG]["ratio_to_adam"], loop.get(AGC, {}).get("ratio_to_adam")
        met = ours <= UPDATE_TARGET and (agc is None or ours < agc)
        peer = "" if agc is None else f", {AGC} {agc:.2f}x"
        out += [
            f"* Update alone, ResNet-50 tree, {platform}: {SG} {ours:.2f}x{peer} "
            f"(target <= {UPDATE_TARGET:.2f}x and below adaptive_grad_clip): "
            f"{'met' if met else 'not met'}.",
            f"* The same update as a jit call from Python: {SG} {_ratio(call[SG])}, "
            f"{AGC} {_ratio(call.get(AGC))}.",
        ]
    if "transformer_bf16" in trees:
        copies = trees["transformer_bf16"]["hlo"]["float32_temporaries"]
        out.append(
            f"* bf16 statistics without a float32 copy, {platform}: {copies} "
            f"float32 copies (target 0): {'met' if copies == 0 else 'not met'}."
        )
    for name, target in (("pinn32", PINN_TARGET), ("resnet50_bs256", RESNET_TARGET)):
        if name in steps:
            ours = steps[name]["entries"][OUTPUT]
            out.append(
                f"* {TRAIN_STEP_TITLES[name]}, train step, {platform}: {OUTPUT} "
                f"{_ratio(ours)} (target <= {target:.2f}x): "
                f"{'met' if ours['ratio_to_adam'] <= target else 'not met'}."
            )
    out.append(
        f"* XLA compilations during the timed rounds: "
        f"{run['compiles_during_timing']} (no retrace between steps)."
    )
    return out


def compile_lines(platform: str, section: dict[str, Any]) -> list[str]:
    """The compile table: per tree and gradients, seconds (best of the rounds)
    and the update's time, against adam and AGC."""
    body = []
    for name, tree in section["trees"].items():
        for kind in ("ordinary", "one zero layer"):
            best = {k: min(v) for k, v in tree[kind]["compile_s"].items()}
            call = tree[kind]["update_call"]["entries"]
            loop = tree[kind]["update_loop"]["entries"]
            body.append(
                [
                    f"{COMPILE_TITLES.get(name, name)} ({tree['num_leaves']} leaves), "
                    f"{kind}",
                    *(f"{best[k]:.2f}" for k in ("adam", AGC, SG)),
                    f"{best[SG] / best['adam']:.2f}x",
                    f"{best[SG] / best[AGC]:.2f}x",
                    *(_ratio(t[k]) for t in (call, loop) for k in (SG, AGC)),
                ]
            )
    header = ["tree, gradients", "adam (s)", "AGC + adam (s)", "StableGrad + adam (s)"]
    header += ["StableGrad / adam", "StableGrad / AGC"]
    for setting in ("jit call", "compiled loop"):
        header += [f"{setting}: StableGrad / adam", f"{setting}: AGC / adam"]
    return [
        f"**Compile time, {platform.upper()}** ({_provenance(section)}). Seconds "
        "of `jax.jit(tx.update).lower(...).compile()` for `optax.adam`, "
        "`adaptive_grad_clip(0.01)` + adam and `stablegrad()` + adam, the best of "
        f"{section['config']['compile_rounds']} interleaved rounds (JAX's caches "
        "cleared before each), with the tree's random gradients and with its middle "
        "weight leaf zero (a dead layer: StableGrad's fast sums fail on it and one "
        "more read finds it zero). The update: its time against adam's in the "
        "same rounds, as a jit call (which allocates its output: on the blocks "
        "that allocation is about half of adam's time) and repeated inside one "
        "compiled loop (no allocation; closer to a training step).",
        "",
        *mdtables.table(header, body),
        "",
    ]


def platform_lines(platform: str, run: dict[str, Any]) -> list[str]:
    """The page's ratio table, HLO notes and verdicts of one platform."""
    return [
        f"**{platform.upper()}** ({_provenance(run)}). `update` = the update "
        "alone, repeated inside one compiled loop; `jit call` = "
        "`jax.jit(tx.update)` called from Python.",
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
    lines = [
        TITLE,
        "",
        *mdtables.generated(SCRIPT, sources),
        "",
        "A ratio followed by a range in brackets divides one median time per step "
        "by another (`optax.adam`'s unless the column says otherwise), both timed in "
        "the same interleaved rounds; the brackets hold the range of the per-round "
        f"ratios ([method]({METHOD})). Full tables (every tree, kernel counts, XLA's "
        "cost model): `benchmarks/results/overhead.md`, written by the same command.",
        "",
    ]
    for platform, run in runs.items():
        if "trees" in run:
            lines += platform_lines(platform, run)
        if "train_steps" in run:
            lines += train_step_lines(platform, run["train_steps"])
        if "compile" in run:
            lines += compile_lines(platform, run["compile"])
    if missing := [p.upper() for p in ("cpu", "gpu") if p not in runs]:
        lines += [
            f"Not measured here: {', '.join(missing)} (no such device was "
            "available; run `python benchmarks/overhead.py` on one and then this "
            "report).",
            "",
        ]
    return "\n".join(lines)


def _table(header: list[str], rows: dict[str, Sequence[str]]) -> list[str]:
    """A table with a row per label (shown as code), followed by a blank line."""
    return [*mdtables.table(header, [[f"`{k}`", *v] for k, v in rows.items()]), ""]


def _timed(section: dict[str, Any]) -> list[str]:
    """A timed section's table: per entry, median, ratio to adam, steps/round."""
    rows = {
        label: [f"{e['median_s'] * 1e6:.0f}", _ratio(e), str(e["iters"])]
        for label, e in section["entries"].items()
    }
    return _table(["", "median (us)", "ratio to adam", "steps/round"], rows)


def _meta_lines(run: dict[str, Any]) -> list[str]:
    """A run's (or a section's) provenance and compilations, then a blank line."""
    meta = run["meta"]
    cores = f"; CPU affinity {meta['cpu_affinity']}" if "cpu_affinity" in meta else ""
    return [
        f"Command: `{meta['command']}`  ",
        f"Device: {meta['device']} ({meta['jax_device']}){cores}  ",
        f"Date: {meta['date']}; git {meta['git_commit']}; jax {meta['jax']}, "
        f"jaxlib {meta['jaxlib']}, optax {meta['optax']}, python "
        f"{meta['python']}  ",
        f"Wall time: {run['wall_time_s']:.0f} s; XLA compilations during the timed "
        f"rounds: {run['compiles_during_timing']}",
        "",
    ]


def train_step_report(section: dict[str, Any]) -> list[str]:
    """overhead.md's part on the paper's variant against the output reference."""
    lines = [
        "### Train step: the paper's variant against the output reference",
        "",
        *_meta_lines(section),
        *(line for remark in _remarks(section["meta"]) for line in (remark, "")),
    ]
    for name, model in section["models"].items():
        ratio = model["prediction_over_output"]
        costs = model["xla_cost_per_call"].items()
        losses = ", ".join(f"{k} {v:.4g}" for k, v in model["final_loss"].items())
        lines += [
            f"#### {TRAIN_STEP_TITLES.get(name, name)}",
            "",
            *_timed(model),
            f"`{PAPER}` / `{OUTPUT}`: {_ratio(ratio, '')}; by the process's CPU "
            f"time {_ratio(ratio, 'cpu_')}. Loss after the timed steps: {losses}.",
            "",
            "XLA's cost model of one compiled call:",
            "",
            *_table(
                ["", "flops", "transcendentals", "bytes accessed"],
                {k: [f"{v:,.0f}" for v in cost.values()] for k, cost in costs},
            ),
        ]
    return lines


def tree_report(name: str, tree: dict[str, Any]) -> list[str]:
    """overhead.md's part on one tree: both timings, the kernels of each update."""
    lines = [
        f"### {TREE_TITLES.get(name, name)}: {tree['description']}",
        "",
        f"{tree['num_leaves']} leaves, {tree['num_params']:,} parameters.",
        "",
    ]
    for key, kind in (("update_loop", "compiled loop"), ("update_call", "jit call")):
        lines += [f"update, {kind}:", "", *_timed(tree[key])]
    if "fallback_check" in tree:
        error = tree["fallback_check"]["stats_ratio_over_1e-30_max_rel_err"]
        lines += [
            "1e-30 gradients (careful path): statistics equal 1e-30 x the "
            f"normal ones to {error:.1e} relative.",
            "",
        ]
    keys = ("fusions", "reduction_fusions", "loop_body_fusions")
    counts = tree["hlo"]["entry_counts"].items()
    return [
        *lines,
        "Kernels in each compiled update (ENTRY computation):",
        "",
        *_table(
            ["", "kernels", "with a reduction", "in the loop body"],
            {label: [str(c[k]) for k in keys] for label, c in counts},
        ),
    ]


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
        lines += _meta_lines(run)
        for name, tree in run["trees"].items():
            lines += tree_report(name, tree)
        lines += ["### What XLA compiles for `stablegrad` alone", "", *hlo_lines(run)]
        lines.append("")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = mdtables.parser(__doc__, RESULTS, "performance.md", "overhead.md")
    args = parser.parse_args(argv)
    runs = load(args.results)
    if not runs:
        print(f"no overhead_<platform>.json in {args.results}", file=sys.stderr)
        return 1
    outputs = {args.page: page(runs), args.results / "overhead.md": full_report(runs)}
    return mdtables.check_or_write(outputs, args.check, SCRIPT, args.results)


if __name__ == "__main__":
    sys.exit(main())
