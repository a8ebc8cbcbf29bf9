"""The BN-free ResNet example (examples/bnfree_resnet): a short real run, its parts."""

import functools
import json
import pathlib
import sys

import jax
import jax.numpy as jnp
import pytest
from helpers import example_main

import stablegrad_optax as sgo
from stablegrad_optax import models

EXAMPLE = pathlib.Path(__file__).parents[1] / "examples" / "bnfree_resnet"
TEST_CONFIG = str(EXAMPLE / "configs" / "test.py")


example = example_main("bnfree_resnet")


def load_test_config():
    """configs/test.py, loaded as ``--config`` loads it."""
    return sys.modules["common"].load_config(TEST_CONFIG)


@pytest.mark.parametrize(
    "variants",
    [
        # The paper's variant's own path: test_the_prediction_variant_passes_...
        ["bn"],
        pytest.param(["bn", "none+stablegrad(prediction)"], marks=pytest.mark.slow),
    ],
    ids=["bn", "bn+prediction"],
)
def test_short_run_writes_results_table_and_plot(example, tmp_path, variants):
    results = example.main(
        [f"--config={TEST_CONFIG}", f"--outdir={tmp_path}", "--variants", *variants]
    )
    written = json.loads((tmp_path / "results.json").read_text())
    assert written["config"]["variants"] == variants
    assert written["meta"]["device"] and written["meta"]["git_commit"]
    assert [r["variant"] for r in written["runs"]] == variants
    for run in written["runs"]:
        assert run == next(r for r in results["runs"] if r["variant"] == run["variant"])
        assert len(run["loss_per_chunk"]) == 2  # 4 steps in chunks of 2
        assert run["first_nonfinite_step"] == 0
        assert 0 <= run["test_accuracy"] <= 1 and run["train_loss"] > 0
        assert run["seconds_per_step"] > 0
    table = (tmp_path / "results.md").read_text()
    assert all(f"| {variant} | – |" in table for variant in variants)
    assert (tmp_path / "loss.png").stat().st_size > 0


@pytest.mark.slow
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
    config = load_test_config()
    params = {"head": {"kernel": jnp.ones((2, 2))}}
    for variant, reference in [
        ("none+stablegrad", "output"),
        ("none+stablegrad(prediction)", "prediction"),
    ]:
        assert train.stablegrad_reference(config, variant) == reference
        state = train.create_optimizer(config, variant).init(params)
        assert isinstance(state[0], sgo.StableGradState)
    assert train.stablegrad_reference(config, "none+agc") is None
    assert train.VARIANTS["bn"].norm == "batch"
    assert train.VARIANTS["none+agc"].norm == "none"
    # AGC is one more link in the chain, before the weight decay and SGD.
    plain = train.create_optimizer(config, "none").init(params)
    assert len(train.create_optimizer(config, "none+agc").init(params)) == (
        len(plain) + 1
    )
    with pytest.raises(ValueError, match="unknown variant"):
        train.create_optimizer(config, "none+sgdp")


def test_the_prediction_variant_passes_the_std_of_dloss_dlogits(example):
    # Two steps of a one-block BN ResNet: StableGrad's reference is the std of
    # d(cross-entropy)/d(logits) on each step's own batch, and the loss and the
    # new BatchNorm statistics are those of the plain forward pass.
    train, pipeline = sys.modules["train"], sys.modules["input_pipeline"]
    config = load_test_config()
    data = pipeline.get_dataset(config)
    batches = (jnp.asarray(data.train_images), jnp.asarray(data.train_labels))
    model = models.ResNet(
        stage_sizes=(1,),
        block_cls=models.ResNetBlock,
        num_classes=data.num_classes,
        width=2,
        stem="cifar",
    )
    tx = train.create_optimizer(config, "none+stablegrad(prediction)")
    init = functools.partial(train.create_train_state, model, tx)
    state = jax.jit(init)(batches[0][:1], config.seed)
    augment = pipeline.augmentation(config)

    @jax.jit
    def step_and_expected(state, key):
        x, y = train.sample_batch(augment, batches, 4, key)
        logits, stats = train.forward(model, state, x, True)
        dlogits = jax.grad(train.cross_entropy)(logits, y)
        new, loss = train.train_step(
            model, tx, augment, batches, 4, state, key, prediction=True
        )
        expected = (train.cross_entropy(logits, y), jnp.std(dlogits), stats)
        return new, loss, expected

    for count, key in enumerate(jax.random.split(jax.random.key(0), 2), 1):
        state, loss, (expected_loss, dlogits_std, stats) = step_and_expected(state, key)
        stablegrad = state.opt_state[0]
        assert not stablegrad.stale_reference and stablegrad.count == count
        assert float(stablegrad.reference) == pytest.approx(float(dlogits_std))
        assert float(loss) == pytest.approx(float(expected_loss))
        assert jax.tree.all(jax.tree.map(jnp.allclose, state.batch_stats, stats))


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
