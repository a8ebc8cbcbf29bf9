"""The overhead benchmark (quick setting) and its report; the MLP regression."""

import json
import math
import pathlib

import pytest
from helpers import load_script, regenerated_page

BENCHMARKS = pathlib.Path(__file__).parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def scripts():
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(BENCHMARKS))
        overhead = load_script(BENCHMARKS / "overhead.py", "overhead", patch)
        report = load_script(
            BENCHMARKS / "overhead_report.py", "overhead_report", patch
        )
        yield overhead, report


@pytest.mark.slow
def test_overhead_quick_run_and_its_report(scripts, tmp_path):
    overhead, report = scripts
    optimizers = "stablegrad+adam"
    overhead.main(
        [
            "--quick",
            "--outdir",
            str(tmp_path),
            "--optimizers",
            optimizers,
            "--train-steps",
            "pinn32,resnet50_bs256",
        ]
    )
    results = json.loads((tmp_path / "overhead_cpu.json").read_text())
    assert results["meta"]["device"] and results["meta"]["date"]
    assert results["compiles_during_timing"] == 0
    assert set(results["trees"]) == {"resnet50", "mlp64", "transformer_bf16"}
    resnet = results["trees"]["resnet50"]
    assert resnet["num_leaves"] == 108  # the shape of the real tree, narrower
    assert resnet["hlo"]["large_max_reductions"] <= 2
    assert resnet["hlo"]["large_stacked"] == 0
    assert results["trees"]["transformer_bf16"]["dtype"] == "bfloat16"
    mlp = results["trees"]["mlp64"]
    assert mlp["fallback_check"]["stats_ratio_over_1e-30_max_rel_err"] < 1e-4
    assert "stablegrad+adam [1e-30 grads]" in mlp["update_loop"]["entries"]
    for section in (mlp["update_loop"], mlp["update_call"]):
        assert section["entries"]["adam"]["ratio_to_adam"] == 1.0
        assert set(section["entries"]) >= {"adam", "stablegrad alone"}
    train = results["train_steps"]
    assert train["meta"]["date"] and train["compiles_during_timing"] == 0
    for step in train["models"].values():
        assert set(step["entries"]) == {"adam", overhead.OUTPUT, overhead.PAPER}
        assert all(loss == loss for loss in step["final_loss"].values())  # not NaN
    pinn = train["models"]["pinn32"]
    ratio = pinn["prediction_over_output"]
    assert ratio["round_ratio_min"] <= ratio["ratio"] <= ratio["round_ratio_max"]
    assert 0.9 < ratio["xla_cost"]["flops"] < 1.1  # one forward, one backward

    page = tmp_path / "performance.md"
    page.write_text("stale\n")
    args = ["--results", str(tmp_path), "--page", str(page)]
    text = regenerated_page(report, args, page)
    assert "stale" not in text
    assert "Not measured here: GPU" in text
    assert "| `stablegrad+adam` |" in text
    assert "Train step: the paper's variant against the output reference" in text
    assert "prediction step / output step" in text
    assert "transformer" in (tmp_path / "overhead.md").read_text()
    # Compile and update time against adam and AGC, each tree twice.
    compiled = results["compile"]["trees"]
    assert set(compiled) == {"mlp64", "blocks48", "resnet50"}
    for tree in compiled.values():
        for kind in ("ordinary", "one zero layer"):
            assert set(tree[kind]["compile_s"]) == {
                "adam",
                "adaptive_grad_clip+adam",
                "stablegrad+adam",
            }
            assert all(s[0] > 0 for s in tree[kind]["compile_s"].values())
    assert "Compile time" in text


def test_only_train_steps_keeps_the_other_sections(scripts, tmp_path, monkeypatch):
    overhead, _ = scripts
    path = tmp_path / "overhead_cpu.json"
    path.write_text(json.dumps({"meta": {"date": "then"}, "trees": {}, "x": 1}))
    monkeypatch.setattr(
        overhead,
        "train_steps_section",
        lambda config: {"models": config.train_steps, "wall_time_s": 0.0},
    )
    overhead.main(["--quick", "--outdir", str(tmp_path), "--only", "train-steps"])
    assert json.loads(path.read_text()) == {
        "meta": {"date": "then"},
        "trees": {},
        "x": 1,
        "train_steps": {"models": ["pinn32", "resnet18_w16"], "wall_time_s": 0.0},
    }


@pytest.mark.slow
def test_resnet18_train_step_of_the_paper_variant_runs(scripts):
    """The quick run covers the train-steps section with the PINN; this steps
    the ResNet-18 of the paper's variant once (a conv net's compile: slow)."""
    overhead, _ = scripts
    tx, prediction = overhead.train_step_optimizers()[overhead.PAPER]
    config = overhead.parse_args(["--quick", "--outdir", "unused"])
    run = overhead.TRAIN_STEPS["resnet18_w16"](tx, prediction, config)
    run(1)
    assert run.final_loss == run.final_loss  # not NaN


def test_report_needs_results(scripts, tmp_path):
    _, report = scripts
    assert report.main(["--results", str(tmp_path), "--check"]) == 1


def test_performance_page_is_generated_from_the_committed_json(scripts):
    _, report = scripts
    assert (report.RESULTS / "overhead_cpu.json").exists()
    assert report.main(["--check"]) == 0, (
        "docs/results/performance.md or overhead.md differs from what "
        "benchmarks/overhead_report.py makes of benchmarks/results/overhead_*.json"
    )


def test_bad_flags_exit_with_a_message(scripts, capsys):
    overhead, _ = scripts
    for flags in (
        ["--trees", "vgg"],
        ["--optimizers", "sgd"],
        ["--quick"],
        ["--rounds", "0"],
        ["--block-seconds", "nan"],
        ["--chunk", "x"],
    ):
        with pytest.raises(SystemExit):
            overhead.parse_args(flags)
    assert "choose from" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # a loss-weighting option without its section
        overhead.parse_args(["--problem", "burgers"])
    assert "--problem: only with --only loss-weighting" in capsys.readouterr().err


@pytest.mark.slow
def test_mlp_regression_runs_and_writes_results(tmp_path, monkeypatch, capsys):
    bench = load_script(BENCHMARKS / "mlp_regression.py", "mlp_regression", monkeypatch)
    # 7 steps in chunks of 4 (a full and a partial scan); an SGD grid with a
    # learning rate far too large, so that the diverged path is exercised.
    bench.main(
        [
            "--steps=7",
            "--chunk=4",
            "--depth=2",
            "--width=8",
            "--num-train=64",
            "--num-val=64",
            "--adam-lrs",
            "1e-3",
            "--sgd-lrs",
            "1e-2",
            "1e12",
            "--no-progress",
            f"--outdir={tmp_path}",
        ]
    )
    printed = capsys.readouterr().out

    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results["runs"]) == set(bench.OPTIMIZERS)
    assert set(results["chosen"]) == set(bench.OPTIMIZERS)
    assert results["meta"]["device"] and results["meta"]["git_commit"]
    numbers = ("final_train_mse", "final_val_mse", "best_val_mse")
    for name, runs in results["runs"].items():
        assert [r["learning_rate"] for r in runs] == (
            [1e-3] if "adam" in name else [1e-2, 1e12]
        )
        for run in runs:
            assert len(run["val_curve"]) == 7 + 1
            if run["diverged"]:
                assert run["final_val_mse"] is None or run["final_train_mse"] is None
            else:
                assert all(math.isfinite(run[key]) for key in numbers), run
    assert any(r["diverged"] for r in results["runs"]["sgd-momentum"])
    assert results["chosen"]["sgd-momentum"] == 1e-2
    assert math.isfinite(results["init_imbalance"]["ratio"])

    png = tmp_path / "val_mse.png"
    assert png.read_bytes().startswith(b"\x89PNG")

    assert "| optimizer | chosen lr |" in printed
    for name in bench.OPTIMIZERS:
        assert f"| {name} |" in printed


@pytest.mark.slow
@pytest.mark.parametrize("seeds", [1, 2])
def test_loss_weighting_cost_tiny_run(scripts, tmp_path, seeds):
    """The weighting's cost (``--only loss-weighting``) runs and writes one
    entry per --seeds."""
    overhead, _ = scripts
    flags = ["--depth=1", "--every=2", "--steps=4", "--rounds=1"]
    overhead.main(
        ["--only=loss-weighting", *flags, f"--seeds={seeds}", f"--outdir={tmp_path}"]
    )
    saved = json.loads((tmp_path / "loss_weighting_cost.json").read_text())
    entry = saved[f"seeds_{seeds}"]
    assert set(entry["step_s"]) == {"wall", "cpu"}
    assert set(entry["wall_median_ratio_to_none"]) == {
        "grad_norm",
        "grad_norm, step 0 only",
    }
    assert entry["device"] and entry["git_commit"]


@pytest.mark.slow
def test_loss_weighting_cost_of_recipes(scripts, tmp_path):
    """``--recipes`` times whole recipes against the first one, into the
    ``recipes_<problem>_<depth>`` entry the long-budget page reads."""
    overhead, _ = scripts
    flags = ["--depth=1", "--every=2", "--steps=4", "--rounds=1", "--seeds=1"]
    recipes = "--recipes=adam+warmup+decay,adam+warmup+decay+gradnorm"
    overhead.main(["--only=loss-weighting", *flags, recipes, f"--outdir={tmp_path}"])
    saved = json.loads((tmp_path / "loss_weighting_cost.json").read_text())
    ratios = saved["recipes_poisson_1"]["wall_median_ratio_to_adam+warmup+decay"]
    assert (
        list(ratios) == ["adam+warmup+decay+gradnorm"]
        and ratios["adam+warmup+decay+gradnorm"] > 0
    )
