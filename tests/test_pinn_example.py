"""The flagship example (examples/pinn): a short real run, the flags, the parts."""

import dataclasses
import json
import math
import pathlib
import sys

import pytest
from helpers import example_main

EXAMPLE = pathlib.Path(__file__).parents[1] / "examples" / "pinn"
TEST_CONFIG = str(EXAMPLE / "configs" / "test.py")


example = example_main("pinn")


def test_short_run_writes_results_table_and_figures(example, tmp_path):
    # The real loop, 4 steps in chunks of 2, every optimizer; SGD with
    # momentum picks from a grid with a learning rate that must diverge.
    grid = "--lr=sgd-momentum=1e-6,1e9"
    results = example.main([f"--config={TEST_CONFIG}", f"--outdir={tmp_path}", grid])
    written = json.loads((tmp_path / "results.json").read_text())
    assert written["config"]["optimizers"] == list(example.OPTIMIZERS)
    assert written["chosen_learning_rate"] == results["chosen_learning_rate"]
    assert written["meta"]["device"] and written["meta"]["date"]

    sgd = {r["learning_rate"]: r for r in written["runs"]["sgd-momentum"]}
    assert sgd[1e9]["diverged"] and sgd[1e9]["final_rel_l2"] is None  # NaN -> null
    assert not sgd[1e-6]["diverged"]
    assert written["chosen_learning_rate"]["sgd-momentum"] == 1e-6

    chosen_lr = written["chosen_learning_rate"]
    for name, runs in written["runs"].items():
        chosen = next(r for r in runs if r["learning_rate"] == chosen_lr[name])
        assert [r["step"] for r in chosen["records"]] == [2, 4]
        assert sorted(chosen["final_terms"]) == ["boundary", "loss", "residual"]
        assert 0 < chosen["final_rel_l2"] < 10 and chosen["time_per_step_s"] > 0
        assert chosen["time_per_step_includes_compilation"] is False

    profiles = written["gradient_std"]
    assert set(profiles) == {"init", *example.OPTIMIZERS}
    head = profiles["init"]["raw"]["head"]
    assert all(
        math.isclose(v, head, rel_tol=1e-5)
        for v in profiles["init"]["stablegrad"].values()
    )  # after StableGrad (reference "output"), every layer has the head's std

    table = (tmp_path / "table.md").read_text()
    for name in example.OPTIMIZERS:
        assert f"| {name} | " in table
    assert "1e-06 (1e-06, 1e+09)" in table
    for figure in ("curves.png", "fields.png", "gradient_std.png"):
        assert (tmp_path / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--depth=0"], "--depth: must be >= 1"),
        (["--steps=-3"], "--steps: must be >= 1"),
        (["--problem=heat"], "--problem: invalid choice"),
        (["--activation=relu"], "--activation: invalid choice"),
        (["--init=xavier"], "--init: invalid choice"),
        (["--optimizers", "adam", "rmsprop"], "--optimizers: invalid choice"),
        (["--lr=adagrad=1e-3"], "NAME one of adam"),
        (["--lr=adam=fast"], "bad learning rate"),
        (["--lr=adam=0"], "learning rates must be > 0"),
        (["--config=/no/such/config.py"], "--config: no get_config()"),
        (["--reference=prediction"], "stablegrad(prediction)+adam optimizer"),
    ],
)
def test_bad_flags_give_argparse_errors(example, capsys, flags, message):
    with pytest.raises(SystemExit) as exit_info:
        example.parse_args(flags)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_missing_learning_rate_is_an_argparse_error(example, capsys, tmp_path):
    config = tmp_path / "only_adam.py"
    config.write_text(
        "import dataclasses\nfrom configs import default\n\n"
        "def get_config():\n"
        "    return dataclasses.replace(\n"
        "        default.get_config(), learning_rates={'adam': (1e-3,)})\n"
    )
    assert example.parse_args([f"--config={config}", "--optimizers=adam"])
    with pytest.raises(SystemExit):
        example.parse_args([f"--config={config}"])
    assert (
        "no learning rate for ['stablegrad(prediction)+adam'" in capsys.readouterr().err
    )


def test_flags_override_the_config(example):
    config, outdir = example.parse_args(
        [
            "--problem=helmholtz",
            "--depth=3",
            "--width=7",
            "--activation=sin",
            "--init=lecun",
            "--steps=9",
            "--seed=4",
            "--optimizers",
            "sgd-momentum",
            "adam",
            "--lr=adam=1e-4,1e-3",
            "--reference=0.5",
            "--no-progress",
            "--outdir=elsewhere",
        ]
    )
    assert (config.problem, config.depth, config.width) == ("helmholtz", 3, 7)
    assert (config.activation, config.init, config.steps) == ("sin", "lecun", 9)
    assert config.seed == 4 and config.optimizers == ("sgd-momentum", "adam")
    assert config.learning_rates["adam"] == (1e-4, 1e-3)
    assert config.learning_rates["sgd-momentum"]  # the default's, kept
    assert config.reference == 0.5 and not config.progress and outdir == "elsewhere"
    # The default's loss weight carries over to the new problem.
    assert config.problem_options == {"boundary_weight": 100.0}

    default, _ = example.parse_args([])
    assert default.depth >= 24 and default.activation == "tanh"
    assert all(len(default.learning_rates[n]) >= 1 for n in default.optimizers)
    assert default.reference == "output"


def test_create_optimizer_chains_stablegrad_only_when_named(example):
    import jax.numpy as jnp
    import optax

    import stablegrad_optax as sgo

    train = sys.modules["train"]
    config, _ = example.parse_args([])
    for name in example.OPTIMIZERS:
        tx = train.create_optimizer(name, 1e-3, config)
        state = tx.init({"w": jnp.ones((2, 2))})
        has_stablegrad = isinstance(state, tuple) and any(
            isinstance(s, sgo.StableGradState) for s in state
        )
        assert has_stablegrad == name.startswith("stablegrad")
        paper = name == "stablegrad(prediction)+adam"
        assert (train.stablegrad_reference(name, config) == "prediction") == paper
        assert (train.prediction_reading(name, config) == "data") == paper
    # The depth sweep's baselines: AGC then Adam, and Adam with its learning
    # rate decayed exponentially to DECAY_TO of its start over the run.
    params, grads = {"w": jnp.ones((2, 2))}, {"w": jnp.full((2, 2), 5.0)}
    agc = train.create_optimizer("agc+adam", 1e-3, config)
    clip = sys.modules["common"].AGC_CLIP
    clipped = optax.adaptive_grad_clip(clip).update(grads, None, params)[0]
    assert not jnp.allclose(clipped["w"], grads["w"])  # this gradient is clipped
    _, state = agc.update(grads, agc.init(params), params)
    first_moment = optax.tree_utils.tree_get(state, "mu")  # Adam's, (1 - b1) g
    assert jnp.allclose(first_moment["w"], 0.1 * clipped["w"])
    short = dataclasses.replace(config, steps=10)
    decay = train.create_optimizer("adam+decay", 1e-3, short)
    state, steps = decay.init(params), []
    for _ in range(11):
        update, state = decay.update(grads, state, params)
        steps.append(float(-update["w"][0, 0]))
    assert steps[0] == pytest.approx(1e-3, rel=1e-4)  # a constant gradient:
    assert steps[10] == pytest.approx(train.DECAY_TO * 1e-3, rel=1e-4)  # lr(t)
    for bad in ("rmsprop", "stablegrad+rmsprop", "foo+adam"):
        with pytest.raises(ValueError, match="optimizer must be one of"):
            train.create_optimizer(bad, 1e-3, config)


def test_choose_prefers_lowest_finite_final_error(example):
    choose = sys.modules["train"].choose
    run = lambda err, diverged=False: {"final_rel_l2": err, "diverged": diverged}
    assert choose({1e-3: run(0.5), 1e-4: run(0.2), 1e-2: run(0.1, True)}) == 1e-4
    assert choose({1e-3: run(math.nan), 1e-4: run(0.9)}) == 1e-4
    assert choose({1e-3: run(math.nan, True), 1e-2: run(math.nan, True)}) == 1e-3
