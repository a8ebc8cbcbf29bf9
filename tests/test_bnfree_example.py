"""The BN-free ResNet example (examples/bnfree_resnet): a short real run, its parts."""

import importlib
import json
import pathlib
import sys

import jax.numpy as jnp
import pytest

import stablegrad_optax as sgo

EXAMPLE = pathlib.Path(__file__).parents[1] / "examples" / "bnfree_resnet"
TEST_CONFIG = str(EXAMPLE / "configs" / "test.py")
MODULES = ("main", "train", "report", "input_pipeline", "configs", "bnfree_config")


@pytest.fixture
def example(monkeypatch):
    """examples/bnfree_resnet/main.py, imported as the script sees its modules."""
    monkeypatch.syspath_prepend(str(EXAMPLE))
    for name in MODULES:
        monkeypatch.delitem(sys.modules, name, raising=False)
    yield importlib.import_module("main")
    for name in list(sys.modules):
        if name in MODULES or name.startswith("configs."):
            del sys.modules[name]


def test_short_run_writes_results_table_and_plot(example, tmp_path):
    results = example.main([f"--config={TEST_CONFIG}", f"--outdir={tmp_path}"])
    written = json.loads((tmp_path / "results.json").read_text())
    assert written["config"]["variants"] == ["bn", "none+stablegrad"]
    assert written["meta"]["device"] and written["meta"]["git_commit"]
    assert [r["variant"] for r in written["runs"]] == ["bn", "none+stablegrad"]
    for run in written["runs"]:
        assert run == next(r for r in results["runs"] if r["variant"] == run["variant"])
        assert len(run["loss_per_chunk"]) == 2  # 4 steps in chunks of 2
        assert run["first_nonfinite_step"] == 0
        assert 0 <= run["test_accuracy"] <= 1 and run["train_loss"] > 0
        assert run["seconds_per_step"] > 0
    table = (tmp_path / "results.md").read_text()
    assert "| bn | – |" in table and "| none+stablegrad | – |" in table
    assert (tmp_path / "loss.png").stat().st_size > 0


def test_a_diverging_variant_is_reported_not_averaged(example, tmp_path):
    # lr 1e6: the loss overflows within the 4 steps; the run stops at the chunk
    # where it does and reports the step, with no final metrics.
    example.main(
        [
            f"--config={TEST_CONFIG}",
            f"--outdir={tmp_path}",
            "--variants",
            "none",
            "--learning-rate=1e6",
        ]
    )
    (run,) = json.loads((tmp_path / "results.json").read_text())["runs"]
    assert 1 <= run["first_nonfinite_step"] <= 4
    assert run["test_accuracy"] is None and run["train_loss"] is None
    assert (
        f"| none | {run['first_nonfinite_step']} | – |"
        in (tmp_path / "results.md").read_text()
    )


def test_the_optimizer_is_built_in_one_place(example):
    train = sys.modules["train"]
    config = example.load_config(TEST_CONFIG)
    state = train.create_optimizer(config, "none+stablegrad").init(
        {"head": {"kernel": jnp.ones((2, 2))}}
    )
    assert isinstance(state[0], sgo.StableGradState)
    assert train.norm_of("bn") == "batch" and train.norm_of("none+agc") == "none"


def test_flags_and_bad_input(example):
    config, outdir = example.parse_args(
        [f"--config={TEST_CONFIG}", "--width=3", "--variants", "skipinit", "--outdir=o"]
    )
    assert config.width == 3 and config.variants == ("skipinit",) and outdir == "o"
    with pytest.raises(SystemExit):
        example.parse_args(["--variants", "bn+stablegrad"])
    with pytest.raises(SystemExit):
        example.parse_args([f"--config={TEST_CONFIG}", "--steps=3"])  # log_every 2
    pipeline = sys.modules["input_pipeline"]
    with pytest.raises(ValueError, match="data_dir"):
        pipeline.get_dataset(config.__class__(dataset="cifar10"))
