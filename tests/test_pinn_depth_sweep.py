"""The deep-PINN depth sweep (benchmarks/): a tiny real run, its CSV, its report."""

import csv
import importlib
import math
import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

ROOT = pathlib.Path(__file__).parents[1]
BENCHMARKS = ROOT / "benchmarks"
MODULES = ("pinn_depth_sweep", "pinn_depth_sweep_report", "sweep_results")
TINY = [
    "--problems=burgers,poisson",
    "--depths=2",
    "--tune-depth=2",
    "--width=8",
    "--steps=2",
    "--eval-every=1",
    "--optimizers=adam,stablegrad+adam",
    "--inits=glorot",
    "--seeds=0,1",
    "--eval-resolution=9",
    "--num-validation=32",
    "--num-interior=16",
    "--num-boundary=8",
]


@pytest.fixture(scope="module")
def modules():
    """The sweep's scripts, imported as they see each other."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(BENCHMARKS))
        for name in MODULES:
            patch.delitem(sys.modules, name, raising=False)
        before = set(sys.modules)
        yield [importlib.import_module(name) for name in MODULES]
        for name in set(sys.modules) - before:
            del sys.modules[name]


@pytest.fixture(scope="module")
def tiny_csv(modules, tmp_path_factory):
    """One tiny real sweep (2 steps), shared by the tests that read it."""
    sweep, _, _ = modules
    path = tmp_path_factory.mktemp("sweep") / "sweep.csv"
    sweep.main([*TINY, f"--results={path}"])
    return path


def test_tiny_sweep_writes_one_row_per_run_and_resumes(modules, tiny_csv):
    sweep, _, results = modules
    with tiny_csv.open(newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == results.COLUMNS
    rows = results.read_rows(tiny_csv)
    grid = sweep.grid_of("adam")
    # Stage 1: the grid on seed 0; stage 2: seed 1 at the chosen lr (one lr: the
    # tuning depth is the only depth, so both protocols agree).
    assert len(rows) == 2 * 2 * (len(grid) + 1)
    for problem in ("burgers", "poisson"):
        for optimizer in ("adam", "stablegrad+adam"):
            cell = results.select(rows, problem=problem, optimizer=optimizer)
            tuning = [r for r in cell if r["seed"] == 0]
            assert sorted(r["lr"] for r in tuning) == list(grid)
            assert {r["batch_runs"] for r in tuning} == {len(grid)}
            (later,) = [r for r in cell if r["seed"] == 1]
            best = min(tuning, key=lambda r: r["val_rel_l2"])
            assert later["lr"] == best["lr"]
    for row in rows:
        assert row["steps"] == 2 and row["depth"] == 2 and row["width"] == 8
        assert row["num_interior"] == 16 and row["num_boundary"] == 8
        assert row["device"] and row["date"] and row["git_commit"]
        assert row["wall_s"] > 0 and not row["diverged"]
        for name in ("final_rel_l2", "best_rel_l2", "val_rel_l2"):
            assert 0 < row[name] < 10, (name, row)
        assert row["best_rel_l2"] <= row["final_rel_l2"]
        weight = sweep.BOUNDARY_WEIGHTS[row["problem"]]
        assert row["boundary_weight"] == weight
        weighted = row["loss_residual"] + weight * row["loss_boundary"]
        if row["problem"] == "burgers":
            weighted += row["loss_initial"]
        else:
            assert math.isnan(row["loss_initial"])
        assert row["final_loss"] == pytest.approx(weighted, rel=1e-4)
        assert row["min_layer_grad_std"] > 0 and row["grad_imbalance"] >= 1

    before = tiny_csv.read_text()
    sweep.main([*TINY, f"--results={tiny_csv}"])
    assert tiny_csv.read_text() == before  # nothing is run twice


def test_report_writes_tables_figures_and_the_readme_section(
    modules, tiny_csv, tmp_path
):
    _, report, _ = modules
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{report.START}\nstale\n{report.END}\nafter\n")
    outdir = tmp_path / "out"
    args = [f"--results={tiny_csv}", f"--readme={readme}", "--tune-depth=2"]
    assert report.main([*args, "--check"]) == 1
    assert report.main([*args, f"--outdir={outdir}"]) == 0
    assert report.main([*args, "--check"]) == 0

    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("\nafter\n")
    assert "stale" not in text
    assert "| burgers | glorot | adam |" in text
    assert "stablegrad+adam against adam" in text
    tables = (outdir / "pinn_depth_sweep.md").read_text()
    assert "### glorot init, tuned lr" in tables
    assert "### glorot init, fixed lr" in tables
    for problem in ("burgers", "poisson"):
        assert (outdir / f"pinn_depth_sweep_{problem}.png").stat().st_size > 10_000


def test_readme_section_is_generated_from_the_committed_csv(modules):
    _, report, _ = modules
    assert report.RESULTS.exists()
    assert report.main(["--check"]) == 0, (
        "README.md's depth-sweep section differs from what "
        "benchmarks/pinn_depth_sweep_report.py makes of the committed CSV"
    )


@pytest.mark.parametrize(
    "flags",
    [
        ["--optimizers=adam,nope"],
        ["--problems=wave"],
        ["--depths=4,x"],
        ["--seeds=1,2", "--tune-seed=0"],
        ["--steps=0"],
        ["--inits=xavier"],
    ],
)
def test_bad_flags_exit_with_a_message(modules, flags, capsys):
    sweep, _, _ = modules
    with pytest.raises(SystemExit) as error:
        sweep.parse_args(flags)
    assert error.value.code == 2
    assert "error" in capsys.readouterr().err


def test_learning_rate_choice(modules):
    _, _, results = modules
    cell = {"problem": "p", "depth": 4, "seed": 0}
    rows = [
        {**cell, "lr": 1e-4, "val_rel_l2": 0.5},
        {**cell, "lr": 1e-3, "val_rel_l2": 0.2},
        {**cell, "lr": 1e-2, "val_rel_l2": math.nan},  # diverged
        {**cell, "depth": 8, "lr": 1e-4, "val_rel_l2": 0.1},
    ]
    assert results.choose_lr(rows, [1e-4, 1e-3, 1e-2], **cell) == 1e-3
    assert results.choose_lr(rows[2:3], [1e-2], **cell) == 1e-2
    assert results.choose_lr(rows, [1e-4, 1e-3], problem="p", depth=8, seed=0) is None
    tie = [{**cell, "lr": lr, "val_rel_l2": 0.3} for lr in (1e-3, 1e-4)]
    assert results.choose_lr(tie, [1e-3, 1e-4], **cell) == 1e-4
    fixed = results.protocol_lr(
        rows, [1e-4], "fixed", depth=4, tune_depth=8, tune_seed=0, problem="p"
    )
    assert fixed == 1e-4
    with pytest.raises(ValueError, match="protocol"):
        results.protocol_lr(rows, [1e-4], "best", depth=4, tune_depth=8, tune_seed=0)
    summary = results.summarize([0.05, math.nan, 0.2])
    assert summary == {
        "n": 3,
        "median": 0.2,
        "min": 0.05,
        "max": math.inf,
        "trained": 1,
    }


def test_reading_a_file_with_other_columns_fails(modules, tmp_path):
    _, _, results = modules
    path = tmp_path / "other.csv"
    path.write_text("problem,depth\nburgers,4\n")
    with pytest.raises(ValueError, match="columns"):
        results.read_rows(path)


def test_prediction_reference_is_the_std_of_the_data_loss_gradient(modules):
    sweep, _, _ = modules
    problem = sweep.pinn.get_problem("burgers", boundary_weight=3.0)
    batch = problem.sample(jax.random.key(0), 8, 5, 7)
    apply_fn = lambda params, x: params * x[:, :1] + 0.25  # u = a x + 1/4
    reference = sweep.prediction_reference(problem, apply_fn)(2.0, batch)
    grads = [
        2 * weight * (2.0 * batch[name][:, 0] + 0.25 - batch[f"{name}_values"]) / n
        for name, weight, n in (("boundary", 3.0, 5), ("initial", 1.0, 7))
    ]
    expected = np.std(np.concatenate(grads))
    np.testing.assert_allclose(reference["reference_scale"], expected, rtol=1e-5)
    assert jnp.shape(reference["reference_scale"]) == ()
