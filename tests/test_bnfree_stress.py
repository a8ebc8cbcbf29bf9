"""The BatchNorm-free stress benchmark (benchmarks/): a tiny real run and its report."""

import csv
import json
import math
import sys

import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import benchmark_scripts, regenerated_page, tiny_results

import stablegrad_optax as sgo
from stablegrad_optax import models

TINY = [
    "--models=resnet18",
    "--width=2",
    "--dataset=synthetic",
    "--optimizers=sgd",
    "--seeds=0,1",
    "--steps=4",
    "--chunk=2",
    "--batch-size=4",
    "--eval-examples=8",
]


modules = benchmark_scripts("bnfree_stress")
# A tiny real run in two sittings: the second only runs the new cell.
tiny_csv = tiny_results(
    "stress", [*TINY, "--variants=bn"], [*TINY, "--variants=bn,none+agc"]
)


@pytest.mark.slow
def test_tiny_run_writes_one_row_per_run_and_resumes(modules, tiny_csv):
    _, _, results = modules
    with tiny_csv.open(newline="") as f:
        assert tuple(csv.DictReader(f).fieldnames) == results.COLUMNS
    rows = results.read_rows(tiny_csv)
    assert [(r["variant"], r["seed"]) for r in rows] == [
        ("bn", 0),
        ("bn", 1),
        ("none+agc", 0),
        ("none+agc", 1),
    ]
    for row in rows:
        assert row["steps"] == 4 and row["width"] == 2 and row["lr"] == 0.1
        assert row["first_nonfinite_step"] == 0
        assert math.isfinite(row["final_train_loss"])
        assert 0 <= row["test_accuracy"] <= 1
        assert row["device"].startswith("cpu") and row["git_commit"]
    # seeds differ; variants of one seed share the first minibatch's labels and
    # initial kernels, so their first losses differ only through the norm
    assert rows[0]["initial_loss"] != rows[1]["initial_loss"]
    history = results.read_history(tiny_csv)
    assert len(history) == 4
    assert all(len(h) == 4 for h in history.values())


@pytest.mark.slow
def test_learning_rates_and_the_paper_reference_with_eps_logs(modules, tmp_path):
    bench, _, results = modules
    path = tmp_path / "frontier.csv"
    tiny = [a for a in TINY if not a.startswith(("--optimizers", "--seeds"))]
    flags = ["--optimizers=adamw", "--lrs=0.03", "--seeds=0"]
    variants = "--variants=none+stablegrad(prediction)"
    assert bench.main([*tiny, *flags, variants, f"--results={path}"]) == 0
    rows = results.read_rows(path)
    assert [(r["lr"], r["variant"]) for r in rows] == [
        (0.03, "none+stablegrad(prediction)")
    ]
    assert all(math.isfinite(r["final_train_loss"]) for r in rows)
    lines = [
        json.loads(line)
        for line in path.with_name("frontier_history.jsonl").read_text().splitlines()
    ]
    for line in lines:
        assert set(line) == {"key", "loss", "min_grad_std", "below_eps"}
        assert all(v >= 0 for v in line["min_grad_std"])  # 0: a SkipInit branch
        assert all(v == int(v) and v >= 0 for v in line["below_eps"])
    assert bench.recipes.VARIANTS["none+stablegrad(prediction)"].prediction
    assert not bench.recipes.VARIANTS["none+stablegrad"].prediction
    with pytest.raises(SystemExit):
        bench.parse_args(["--lrs=0"])


@pytest.mark.slow
def test_report_writes_table_figure_and_docs_page(modules, tiny_csv, tmp_path):
    _, report, _ = modules
    page = tmp_path / "docs" / "bnfree_stress.md"
    page.parent.mkdir()
    page.write_text("old\n")
    args = [f"--results={tiny_csv}", f"--outdir={tmp_path}", f"--page={page}"]
    text = regenerated_page(report, args, page)
    assert "old" not in text
    assert "](../bnfree_stress_resnet18_synthetic.png)" in text  # relative to it
    assert "| bn | 0/2 |" in text and "| none+agc | 0/2 |" in text
    assert "resnet18 (width 2) on synthetic, sgd lr 0.1, 4 steps of batch 4" in text
    assert (tmp_path / "bnfree_stress_resnet18_synthetic.png").stat().st_size > 0
    assert (tmp_path / "bnfree_stress.md").read_text().count("| none+agc |") == 1


def test_per_machine_reruns_the_seeds_another_machine_made(
    modules, tmp_path, monkeypatch
):
    bench, _, results = modules
    flags = [*TINY, "--variants=bn", "--seeds=0,1", f"--results={tmp_path / 'r.csv'}"]
    cell = dict(model="resnet18", width=2, dataset="synthetic", optimizer="sgd")
    cell |= dict(lr=0.1, variant="bn", steps=4, batch_size=4)
    measured = dict(first_nonfinite_step=0, initial_loss=2.3, test_accuracy=0.5)
    measured |= dict(final_minibatch_loss=2.0, final_train_loss=2.0, wall_s=1.0)
    meta = dict(date="2026-01-01", git_commit="abc", jax="0")
    elsewhere = {**cell, "seed": 0, **measured, "device": "cpu: elsewhere", **meta}
    results.append_rows(tmp_path / "r.csv", [elsewhere])
    asked = []

    def run_cell(args, data, model, optimizer, variant, seeds, lr=None):
        asked.append(seeds)
        logs = {name: np.ones((len(seeds), args.steps)) for name in bench.LOGS}
        return [{"seed": s, **measured} for s in seeds], logs

    monkeypatch.setattr(bench, "run_cell", run_cell)
    bench.main(flags)
    assert asked == [[1]]  # seed 0 is done, wherever it ran
    bench.main([*flags, "--per-machine"])
    assert asked == [[1], [0]]  # this machine had not run seed 0
    bench.main([*flags, "--per-machine"])
    assert asked == [[1], [0]]
    devices = [r["device"] for r in results.read_rows(tmp_path / "r.csv")]
    assert devices[0] == "cpu: elsewhere" and devices[1] == devices[2] != devices[0]


def test_wilson_intervals_set_what_most_seeds_means(modules):
    _, report, _ = modules
    assert [round(x, 3) for x in report.wilson(9, 10)] == [0.652, 0.977]
    assert round(report.wilson(8, 10)[0], 3) == 0.541  # 8 of 10 is enough
    assert round(report.wilson(7, 10)[0], 3) == 0.442  # 7 of 10 is not
    assert round(report.wilson(3, 3)[0], 3) == 0.526  # 3 of 3 is
    assert report.wilson(0, 5)[0] == 0.0 and report.wilson(5, 5)[1] == 1.0
    # the 95% interval (z 1.96) of 8/10, as published: 0.490 to 0.943
    assert [round(x, 3) for x in report.wilson(8, 10, z=1.96)] == [0.49, 0.943]


def test_each_cell_comes_from_one_machine_and_reruns_are_reported(modules):
    _, report, _ = modules
    cell = dict(model="resnet18", width=16, dataset="digits32", optimizer="adamw")
    cell |= dict(lr=0.01, variant="none", steps=300, batch_size=32)
    cell |= dict(first_nonfinite_step=0)

    def run(seed, accuracy, device):
        return cell | {"seed": seed, "test_accuracy": accuracy, "device": device}

    old = [run(0, 0.9, "old"), run(1, 0.9, "old"), run(2, 0.1, "old")]
    new = [run(s, 0.9 if s != 1 else 0.1, "new") for s in range(10)]
    other = [run(0, 0.9, "old") | {"lr": 0.03}]  # a cell made on one machine
    kept, elsewhere = report.one_machine([*old, *new, *other])
    assert kept == [*new, *other] and elsewhere == old
    text = "\n".join(report.reruns(kept, elsewhere))
    assert "3 runs (cell and seed) were also made on old" in text
    assert "2 of the 3 landed on the other side" in text
    assert "seed 1: 0.100 against 0.900" in text
    assert report.reruns(kept, []) == []


def test_a_diverged_seed_is_counted_not_averaged(modules):
    _, report, results = modules
    key = {
        "model": "m",
        "width": 1,
        "dataset": "d",
        "optimizer": "o",
        "lr": 0.1,
        "variant": "none",
        "steps": 3,
        "batch_size": 2,
        "seed": 0,
    }
    runs = [
        {**key, "first_nonfinite_step": 0, "initial_loss": 2.3,
         "final_train_loss": 0.5, "test_accuracy": 0.9},
        {**key, "seed": 1, "first_nonfinite_step": 7, "initial_loss": 2.4,
         "final_train_loss": math.nan, "test_accuracy": 0.1},
    ]  # fmt: skip
    # the peak comes from the per-step history (the second run has none)
    history = {results.run_key(runs[0]): [2.3, 1e7, 0.5]}
    assert report.summary_row("none", runs, history) == [
        "none",
        "1/2",
        "7",
        "2.35 [2.3, 2.4]",
        "1e+07",
        "0.5",
        "0.9",
    ]


def test_frontier_counts_seeds_that_train_per_learning_rate(modules):
    _, report, _ = modules
    base = dict(model="resnet18", width=16, dataset="digits32", optimizer="adamw")
    base |= dict(steps=300, batch_size=32, first_nonfinite_step=0)

    def run(variant, lr, accuracy, nonfinite=0):
        return {**base, "variant": variant, "lr": lr, "test_accuracy": accuracy} | {
            "first_nonfinite_step": nonfinite
        }

    rows = [
        *(run("none", 1e-3, a) for a in (0.9, 0.8, 0.1)),
        *(run("none", 1e-2, a) for a in (0.1, 0.1, 0.9)),
        *(run("paper", 1e-3, a) for a in (0.9, 0.9, 0.9)),
        *(run("paper", 1e-2, a) for a in (0.9, 0.6, 0.1)),
        run("paper", 3e-2, 0.95, nonfinite=7),  # diverged: does not train
        run("other", 1e-2, 0.9, nonfinite=0) | {"optimizer": "sgd"},  # one lr: none
        *(run("dead", 1e-2, a) for a in (0.1, 0.6, 0.1)),
    ]
    rows = [row | {"seed": i % 3} for i, row in enumerate(rows)]
    text = "\n".join(report.frontier_tables(rows))
    # 2 of 3 is not "most" by the 90% interval (lower bound 0.25); 3 of 3 is.
    assert "| none | 2/3 [0.25, 0.92] | 1/3 [0.08, 0.75] | – | < 0.001 |" in text
    assert (
        "| paper | 3/3 [0.53, 1.00] | 2/3 [0.25, 0.92] | 0/1 [0.00, 0.73] | 0.001 |"
        in text
    )
    assert "sgd" not in text
    # Trains at none of the rates it was run at: below the lowest.
    assert "| dead | – | 1/3 [0.08, 0.75] | – | < 0.01 |" in text
    # Trains at the largest rate it was run at: a lower bound.
    text = "\n".join(report.frontier_tables(rows[:9]))
    assert "| paper | 3/3 [0.53, 1.00] | – | >= 0.001 |" in text
    assert report.frontier_tables(rows[:3]) == []
    key = modules[2].run_key
    # With logs: how many layers were below eps, the most after the first step
    # and at the last, medians over the seeds.
    counts = ([30, 4, 1], [0, 2, 2], [0, 9, 0])  # the first step does not count
    logs = {key(rows[i]): {"below_eps": c} for i, c in enumerate(counts)}
    assert "| none | 2/3 [0.25, 0.92] (4 → 1) | 1/3 [0.08, 0.75] |" in "\n".join(
        report.frontier_tables(rows, logs)
    )
    assert all(map(math.isnan, report.below_eps({"loss": [1.0]})))


@pytest.mark.parametrize(
    ("paper", "base", "word", "texts", "counts"),
    [  # accuracies per lr (1e-3, 1e-2, 3e-2), one seed each of three
        ((0.9, 0.9, 0.1), (0.9, 0.1, 0.1), "higher", "0.01 vs 0.001", "6 vs 3"),
        ((0.9, 0.9, 0.1), (0.9, 0.9, 0.1), "same", "0.01 vs 0.01", "6 vs 6"),
        ((0.9, 0.1, 0.1), (0.9, 0.9, 0.9), "lower", "0.001 vs >= 0.03", "3 vs 9"),
        ((0.1, 0.1, 0.1), (0.9, 0.1, 0.1), "lower", "< 0.001 vs 0.001", "0 vs 3"),
    ],
)
def test_frontier_verdicts_go_each_way(modules, paper, base, word, texts, counts):
    _, report, _ = modules
    setting = dict(model="resnet18", width=16, dataset="digits32", optimizer="adamw")
    setting |= dict(steps=300, batch_size=32, first_nonfinite_step=0)
    lrs = (1e-3, 1e-2, 3e-2)
    rows = [
        setting | {"variant": variant, "lr": lr, "seed": seed, "test_accuracy": acc}
        for variant, accuracies in ((report.PAPER, paper), ("none", base))
        for lr, acc in zip(lrs, accuracies, strict=True)
        for seed in range(3)
    ]
    rows.append(setting | {"variant": "bn", "lr": 1e-3, "seed": 0, "test_accuracy": 1})
    lines = report.frontier_verdicts(rows)
    judged = [line for line in lines if line.startswith("* ")]
    assert len(judged) == 1  # bn ran at one lr only: no comparison with it
    assert f"{report.PAPER} vs none" in judged[0]
    ours, theirs = counts.split(" vs ")
    assert (
        f"): **{word}**, {texts}; runs that train: {ours} of 9 vs {theirs} of 9"
        in (judged[0])
    )
    assert report.frontier_verdicts(rows[:9]) == []  # the baseline was not run
    # AdamW's frontier (the paper's baseline optimizer) comes first.
    sgd = [row | {"optimizer": "sgd"} for row in rows]
    judged = [line for line in report.frontier_verdicts(sgd + rows) if "* " in line]
    assert ["adamw" in line for line in judged] == [True, False]


def test_variants_build_the_transformation_before_the_optimizer(modules):
    bench, _, _ = modules
    assert bench.recipes.VARIANTS["bn"] == bench.recipes.Variant("batch")
    spec = bench.recipes.VARIANTS["skipinit+stablegrad(geometric_mean)"]
    assert spec.norm == "skipinit" and not spec.prediction
    assert isinstance(spec.before(), optax.GradientTransformation)
    # Every variant's norm is one the models take.
    assert {v.norm for v in bench.recipes.VARIANTS.values()} <= set(models.NORMS)
    state = bench.make_optimizer("sgd", "none+stablegrad").init(
        {"head": {"kernel": jnp.ones((2, 2))}}
    )
    assert isinstance(state[0], sgo.StableGradState)
    for bad in ("bn+stablegrad", "layer", "none+stablegrad(rms)", "none+nothing"):
        with pytest.raises(SystemExit):
            bench.parse_args([f"--variants={bad}"])
    with pytest.raises(SystemExit):
        bench.parse_args(["--models=vgg"])


def test_docs_page_is_generated_from_the_committed_csv(modules):
    _, report, results = modules
    assert results.RESULTS.exists()
    assert report.main(["--check"]) == 0, (
        "docs/results/bnfree_stress.md or bnfree_stress.md differ from what "
        "benchmarks/bnfree_stress_report.py makes of the committed CSV"
    )


def test_every_variant_has_a_colour_and_marker_of_its_own(modules):
    _, report, _ = modules
    recipes = sys.modules["recipes"]
    looks = {name: report.style(name) for name in recipes.VARIANTS}
    pairs = {(tuple(look["color"]), look["marker"]) for look in looks.values()}
    assert len(pairs) == len(looks)
    assert looks["bn"]["marker"] != looks["none"]["marker"]
