"""StableGrad inside DeepXDE's JAX backend, and the DeepXDE example."""

import json
import os
import pathlib

import pytest

os.environ["DDE_BACKEND"] = "jax"  # before deepxde is imported

import deepxde as dde  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from helpers import scripts_imported  # noqa: E402

import stablegrad_optax as sgo  # noqa: E402

EXAMPLE = pathlib.Path(__file__).parents[1] / "examples" / "deepxde"
TINY = ["--width=8", "--num-domain=48", "--num-boundary=8", "--num-initial=8"]


@pytest.fixture(scope="module")
def example():
    names = ["main", "callbacks", "problems"]
    with scripts_imported(EXAMPLE, names) as modules:
        yield dict(zip(names, modules, strict=True))


@pytest.fixture(scope="module")
def burgers(example):
    return example["problems"].burgers(num_domain=64, num_boundary=16, num_initial=16)


def build(example, setup, depth, width=16):
    args = example["main"].parse_args([f"--width={width}", "--seed=0"])
    return example["main"].build_model(setup, depth, args.width, args.seed)


@pytest.mark.parametrize(
    "make_tx",
    [
        lambda: sgo.stablegrad_adam(1e-3),
        lambda: optax.chain(sgo.stablegrad(), optax.adam(1e-3)),
    ],
    ids=["alias", "chain"],
)
def test_a_deepxde_model_trains_with_stablegrad(example, burgers, make_tx):
    model = build(example, burgers, depth=3)
    model.compile(make_tx())
    history, _ = model.train(iterations=60, display_every=60, verbose=0)
    first, last = (np.sum(history.loss_train[i]) for i in (0, -1))
    assert np.isfinite(last) and last < first, (first, last)
    state = example["callbacks"].stablegrad_state(model.opt_state)
    assert int(state.count) == 60 and np.all(np.asarray(state.stats) > 0)


@pytest.mark.parametrize(
    "make_tx",
    [
        lambda: sgo.stablegrad_adam(1e-3, reference="prediction"),
        lambda: optax.chain(sgo.stablegrad("prediction"), optax.adam(1e-3)),
    ],
    ids=["alias", "chain"],
)
def test_the_prediction_reference_fails_clearly_inside_deepxde(
    example, burgers, make_tx
):
    # DeepXDE calls update(grads, state): the reference cannot reach the
    # transform, and training must not fall back to another one silently.
    model = build(example, burgers, depth=2)
    model.compile(make_tx())
    with pytest.raises(ValueError, match="reference_scale.*DeepXDE"):
        model.train(iterations=2, display_every=2, verbose=0)


@pytest.mark.slow
def test_the_output_layer_is_the_last_dense_layer(example, burgers):
    # 12 Dense layers: sorted key order puts denses_11 before denses_2, so only
    # natural order finds the output layer.
    model = build(example, burgers, depth=11, width=4)
    model.compile(sgo.stablegrad_adam(1e-3))
    model.train(iterations=1, display_every=1, verbose=0)
    names = sgo.layer_names(model.params)
    assert names[:4] == ["0/params/denses_0", "0/params/denses_1"] + [
        "0/params/denses_10",
        "0/params/denses_11",
    ]
    state = example["callbacks"].stablegrad_state(model.opt_state)
    assert names[int(state.reference_index)] == "0/params/denses_11"


def test_the_callback_records_every_layer(example, burgers):
    model = build(example, burgers, depth=4)
    model.compile(sgo.stablegrad_sgd(1e-3, momentum=0.9))
    logger = example["callbacks"].LayerStatistics(every=5)
    model.train(iterations=12, display_every=12, callbacks=[logger], verbose=0)
    assert [r["step"] for r in logger.records] == [5, 10]
    for record in logger.records:
        assert list(record["std"]) == sgo.layer_names(model.params)
        assert len(record["std"]) == 5 and record["reference"] > 0
        assert all(np.isfinite(v) and v > 0 for v in record["std"].values())
    # The reference is the output layer's statistic.
    last = logger.records[-1]
    assert last["reference"] == pytest.approx(last["std"]["0/params/denses_4"])


def test_the_callback_needs_a_stablegrad_optimizer(example, burgers):
    model = build(example, burgers, depth=2)
    model.compile(optax.adam(1e-3))
    logger = example["callbacks"].LayerStatistics(every=1)
    with pytest.raises(ValueError, match="needs a StableGrad optimizer"):
        model.train(iterations=1, callbacks=[logger], verbose=0)


def test_every_optimizer_starts_from_the_same_network(example, burgers):
    a, b = (build(example, burgers, depth=3) for _ in range(2))
    pairs = zip(
        jax.tree.leaves(a.net.params), jax.tree.leaves(b.net.params), strict=True
    )
    for x, y in pairs:
        assert np.array_equal(x, y)


def test_another_backend_is_one_clear_line(example, monkeypatch, tmp_path):
    monkeypatch.setattr(dde.backend, "backend_name", "pytorch")
    with pytest.raises(SystemExit, match="backend is 'pytorch'.*DDE_BACKEND=jax"):
        example["callbacks"].require_jax_backend()
    with pytest.raises(SystemExit, match="DDE_BACKEND=jax"):
        example["main"].main([*TINY, f"--outdir={tmp_path}"])
    with pytest.raises(SystemExit, match="DDE_BACKEND=jax"):
        example["callbacks"].LayerStatistics()


@pytest.mark.parametrize(
    "problems", ["burgers", pytest.param("burgers,poisson", marks=pytest.mark.slow)]
)
def test_the_example_writes_its_table_and_figures(
    example, tmp_path, monkeypatch, problems
):
    # Two learning rates per grid (every run compiles): the pick still chooses.
    grids = example["main"].GRIDS
    optimizers = ("adam", "stablegrad+sgd-momentum")
    for name in optimizers:
        monkeypatch.setitem(grids, name, grids[name][:2])
    flags = ["--depths=2", "--iterations=4", "--pick-iterations=2", "--log-every=2"]
    flags += [f"--problems={problems}", f"--optimizers={','.join(optimizers)}"]
    results = example["main"].main([*TINY, *flags, f"--outdir={tmp_path}"])
    written = json.loads((tmp_path / "results.json").read_text())
    assert written == json.loads(json.dumps(results))
    assert [(r["problem"], r["optimizer"]) for r in written["runs"]] == [
        (problem, name) for problem in problems.split(",") for name in optimizers
    ]
    for run in written["runs"]:
        assert run["lr"] in [float(k) for k in run["grid_losses"]]
        assert run["loss_curve"]["steps"][-1] == 4
        assert (run["layer_std"] != []) == run["optimizer"].startswith("stablegrad")
    table = (tmp_path / "results.md").read_text()
    assert table.count("| burgers | 2 |") == 2 and "rel-L2" in table
    assert (tmp_path / "losses.png").stat().st_size > 0
    assert (tmp_path / "layer_std.png").exists() is False  # no stablegrad+adam run


@pytest.mark.parametrize(
    "flags",
    [
        ["--problems=heat"],
        ["--optimizers=lbfgs"],
        ["--iterations=0"],
        ["--depths=8,0"],
        ["--num-boundary=-1"],
    ],
)
def test_bad_flags_exit_with_a_usage_error(example, flags, capsys):
    with pytest.raises(SystemExit) as exit_info:
        example["main"].parse_args(flags)
    assert exit_info.value.code == 2
    assert "error:" in capsys.readouterr().err
