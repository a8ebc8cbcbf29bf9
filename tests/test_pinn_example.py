"""The flagship example (examples/pinn): a short real run, the flags, the parts."""

import csv
import json
import pathlib
import sys

import jax.numpy as jnp
import pytest
from helpers import example_main

import stablegrad_optax as sgo

EXAMPLE = pathlib.Path(__file__).parents[1] / "examples" / "pinn"
TEST_CONFIG = str(EXAMPLE / "configs" / "test.py")

example = example_main("pinn")


def test_short_run_writes_results_table_and_figures(example, tmp_path):
    # The real loop: two recipes, two seeds together, 6 steps in chunks of 2.
    results = example.main([f"--config={TEST_CONFIG}", f"--outdir={tmp_path}"])
    written = json.loads((tmp_path / "results.json").read_text())
    tiny = ["adam+warmup+decay+gradnorm", "stablegrad(prediction)+adam+warmup+decay"]
    assert written["config"]["recipes"] == tiny
    assert written["meta"]["device"] and written["meta"]["date"]
    assert written["campaign"] == {}  # no 20,000-step rows for depth 2

    for name, run in written["runs"].items():
        records = run["records"]
        assert [r["step"] for r in records] == [2, 4, 6]
        assert len(run["final_rel_l2"]) == 2 == len(run["best_rel_l2"])
        assert run["final_rel_l2"] == results["runs"][name]["final_rel_l2"]
        assert all(0 < v < 10 for v in run["final_rel_l2"])
        assert run["time_per_step_s"] > 0
        assert not run["time_per_step_includes_compilation"]
        weighted = name.endswith("+gradnorm")
        assert ("loss_weights" in records[-1]) == weighted
        assert ("reference_scale" in records[-1]) == name.startswith("stablegrad")
        if weighted:  # per term, per seed; updated from 1 on the first step
            weights = records[-1]["loss_weights"]
            assert set(weights) == {"residual", "boundary", "initial"}
            assert all(len(w) == 2 and w != [1.0, 1.0] for w in weights.values())

    table = (tmp_path / "table.md").read_text()
    for name in tiny:
        assert f"| {name} | " in table
    assert "| below 0.1 |" in table and "/2 |" in table and "not run |" in table
    for figure in ("curves.png", "fields.png"):
        assert (tmp_path / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_campaign_results_read_the_matching_cell(example, tmp_path):
    train = sys.modules["train"]
    config, _ = example.parse_args([])
    path = tmp_path / "campaign.csv"
    fields = ["problem", "depth", "width", "activation", "init", "optimizer"]
    fields += ["steps", "final_rel_l2"]
    cell = ["burgers", "8", "50", "tanh", "critical"]
    rows = [
        [*cell, "adam+warmup+decay+gradnorm", "20000", "0.01"],
        [*cell, "adam+warmup+decay+gradnorm", "20000", "0.02"],
        [*cell, "adam+warmup+decay+gradnorm", "1500", "0.5"],  # another budget
        ["burgers", "32", *cell[2:], "adam+warmup+decay+gradnorm", "20000", "1"],
        [*cell, "adam", "20000", "0.3"],  # a recipe the run does not train
    ]
    with path.open("w", newline="") as f:
        csv.writer(f).writerows([fields, *rows])
    found = train.campaign_results(config, path)
    assert found == {"adam+warmup+decay+gradnorm": [0.01, 0.02]}
    assert train.campaign_results(config, tmp_path / "absent.csv") == {}
    # The committed campaign holds the default cell for the default recipes.
    committed = train.campaign_results(config)
    assert all(len(committed.get(name, ())) == 3 for name in config.recipes)


def test_results_table_counts_seeds_below_the_threshold(example):
    report = sys.modules["report"]
    run = {
        "final_rel_l2": [0.04, 0.2, float("nan")],
        "best_rel_l2": [0.03, 0.1, 0.5],
        "time_per_step_s": 0.012,
    }
    results = {
        "config": {"threshold": 0.05, "seeds": [1, 2, 3]},
        "runs": {"a": run},
        "campaign": {"a": [0.01, 0.06, 0.002]},
    }
    row = report.results_table(results).splitlines()[-1]
    # A diverged seed (NaN) counts as the worst: the median is the 0.2.
    assert row == (
        "| a | 0.04 / 0.2 / nan | 0.2 | 1/3 | 0.1 | 12 | 0.01 (0.002-0.06), 2/3 |"
    )
    # A diverged campaign seed ends the range, whatever its place in the rows.
    results["campaign"] = {"a": [float("nan"), 0.01, 0.002]}
    row = report.results_table(results).splitlines()[-1]
    assert row.endswith("| 0.01 (0.002-nan), 2/3 |")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--depth=0"], "--depth: must be >= 1"),
        (["--steps=-3"], "--steps: must be >= 1"),
        (["--problem=heat"], "--problem: invalid choice"),
        (["--activation=relu"], "--activation: invalid choice"),
        (["--init=xavier"], "--init: invalid choice"),
        (["--recipes=adam+warmup+decay,rmsprop"], "unknown recipe ['rmsprop']"),
        (["--seeds=1,x"], "not integers"),
        (["--seeds=1,1"], "seeds repeat"),
        (["--lr=0"], "--lr: must be > 0"),
        (["--threshold=-1"], "--threshold: must be > 0"),
        (["--config=/no/such/config.py"], "--config: no get_config()"),
    ],
)
def test_bad_flags_give_argparse_errors(example, capsys, flags, message):
    with pytest.raises(SystemExit) as exit_info:
        example.parse_args(flags)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_flags_override_the_config(example):
    config, outdir = example.parse_args(
        [
            "--problem=helmholtz",
            "--depth=3",
            "--width=7",
            "--activation=sin",
            "--init=lecun",
            "--steps=9",
            "--seeds=4,5",
            "--recipes=adam+warmup+decay",
            "--lr=3e-4",
            "--threshold=0.01",
            "--no-progress",
            "--outdir=elsewhere",
        ]
    )
    assert (config.problem, config.depth, config.width) == ("helmholtz", 3, 7)
    assert (config.activation, config.init, config.steps) == ("sin", "lecun", 9)
    assert config.seeds == (4, 5) and config.recipes == ("adam+warmup+decay",)
    assert config.learning_rate == 3e-4 and config.threshold == 0.01
    assert not config.progress and outdir == "elsewhere"

    default, _ = example.parse_args([])
    assert default.recipes == (
        "adam+warmup+decay+gradnorm",
        "stablegrad(prediction)+adam+warmup+decay+gradnorm",
    )
    assert default.seeds == (1, 2, 3) and default.learning_rate == 1e-3


def test_recipes_are_the_schedule_with_or_without_the_papers_stablegrad(example):
    train = sys.modules["train"]
    config, _ = example.parse_args(["--steps=20"])
    params, grads = {"w": jnp.ones((2, 2))}, {"w": jnp.full((2, 2), 5.0)}
    for name, recipe in train.RECIPES.items():
        tx = train.create_optimizer(name, config)
        state = tx.init(params)
        paper = name.startswith("stablegrad(prediction)+")
        assert recipe.prediction_reference == paper
        assert (recipe.loss_weighting == "grad_norm") == name.endswith("+gradnorm")
        has_stablegrad = isinstance(state, tuple) and any(
            isinstance(s, sgo.StableGradState) for s in state
        )
        assert has_stablegrad == paper
        if not paper:  # Adam on a constant gradient: the step is the schedule
            steps = []
            for _ in range(21):
                update, state = tx.update(grads, state, params)
                steps.append(float(-update["w"][0, 0]))
            assert steps[0] == 0.0  # the warmup starts at zero
            assert steps[2] == pytest.approx(1e-3, rel=1e-4)  # peak after 10%
            assert steps[20] == pytest.approx(1e-4, rel=1e-4)  # decayed to 10%
    with pytest.raises(ValueError, match="recipe must be one of"):
        train.create_optimizer("adam", config)
