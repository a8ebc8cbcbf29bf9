"""The deep-PINN depth sweep (benchmarks/), run for real at a tiny size: its CSV,
its resumption, its report and the docs page from the committed CSV.

The second tier (`slow`): a real sweep compiles a training loop per cell.
"""

import csv
import math
import pathlib

import jax
import jax.numpy as jnp
import optax
import pytest
from helpers import (
    benchmark_scripts,
    markdown_section,
    regenerated_page,
    scripts_imported,
    tiny_results,
)

pytestmark = pytest.mark.slow

ROOT = pathlib.Path(__file__).parents[1]
BENCHMARKS = ROOT / "benchmarks"
OPTIMIZERS = ("adam", "stablegrad(prediction)+adam")
OURS_BASE = ("stablegrad+adam", "adam")  # the pair the results page judges
TINY = [
    "--problems=burgers,helmholtz",
    "--depths=2,3",
    "--tune-depth=2",
    "--width=8",
    "--steps=2",
    "--eval-every=1",
    f"--optimizers={','.join(OPTIMIZERS)}",
    "--inits=glorot",
    "--seeds=0,1",
    "--eval-resolution=10",  # 9 would put Helmholtz's grid on zeros of sin 4πy
    "--num-validation=32",
    "--num-interior=16",
    "--num-boundary=8",
    "--no-extend-grids",  # the grid as given (widening: tests/test_campaign.py)
]


modules = benchmark_scripts("pinn_depth_sweep")
tiny_csv = tiny_results("sweep", TINY)  # one tiny real sweep (2 steps)


def test_tiny_sweep_writes_one_row_per_run(modules, tiny_csv):
    sweep, _, results = modules
    with tiny_csv.open(newline="") as f:
        assert tuple(csv.DictReader(f).fieldnames) == results.COLUMNS
    rows = results.read_rows(tiny_csv)
    expected = 0
    for problem in ("burgers", "helmholtz"):
        grid = sweep.grid_of("adam", problem)
        for optimizer in OPTIMIZERS:
            runs = results.select(rows, problem=problem, optimizer=optimizer)
            tuning = [r for r in runs if r["seed"] == 0]
            chosen = {}  # depth -> lr with the lowest validation error on seed 0
            for depth in (2, 3):
                at = [r for r in tuning if r["depth"] == depth]
                assert sorted(r["lr"] for r in at) == list(grid)
                assert {r["batch_runs"] for r in at} == {len(grid)}
                chosen[depth] = min(at, key=lambda r: r["val_rel_l2"])["lr"]
            for depth in (2, 3):
                # Seed 1 runs at the per-depth choice and at depth 2's.
                later = {
                    r["lr"] for r in runs if r["seed"] == 1 and r["depth"] == depth
                }
                assert later == {chosen[depth], chosen[2]}
                expected += len(grid) + len(later)
    assert len(rows) == expected
    history = results.read_history(tiny_csv)
    assert len(history) == len(rows)
    for row in rows:
        record = history[results.run_key(row)]
        assert record["step"] == [1, 2]
        assert record["rel_l2"][-1] == pytest.approx(row["final_rel_l2"], rel=1e-5)
        assert min(record["min_layer_grad_std"]) > 0
        assert min(record["grad_imbalance"]) >= 1
    for row in rows:
        assert row["steps"] == 2 and row["depth"] in (2, 3) and row["width"] == 8
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


def test_the_sweep_resumes_where_it_stopped(modules, tiny_csv, tmp_path):
    sweep, _, results = modules
    lines = tiny_csv.read_text().splitlines(keepends=True)
    # The last batch is gone and the line before it was cut short by a kill.
    last_batch = results.read_rows(tiny_csv)[-1]["batch_runs"]
    kept = lines[: len(lines) - last_batch]
    path = tmp_path / "cut.csv"
    path.write_text("".join(kept[:-1]) + kept[-1][:10])
    sweep.main([*TINY, f"--results={path}", "--max-minutes=0"])
    assert len(results.read_rows(path)) == len(kept) - 2  # nothing new was run
    sweep.main([*TINY, f"--results={path}"])
    again, full = results.read_rows(path), results.read_rows(tiny_csv)
    assert len(again) == len(full)
    first = {tuple(r[k] for k in results.KEY): r for r in full}
    for row in again:
        expected = first[tuple(row[k] for k in results.KEY)]
        assert row["final_rel_l2"] == pytest.approx(expected["final_rel_l2"], rel=1e-5)
    before = path.read_text()
    sweep.main([*TINY, f"--results={path}"])
    assert path.read_text() == before  # nothing is run twice


def test_report_writes_tables_figures_and_the_docs_page(modules, tiny_csv, tmp_path):
    _, report, _ = modules
    page = tmp_path / "docs" / "depth_sweep.md"
    page.parent.mkdir()
    page.write_text("stale\n")
    outdir = tmp_path / "out"
    args = [
        f"--results={tiny_csv}",
        f"--page={page}",
        f"--outdir={outdir}",
        "--tune-depth=2",
    ]
    text = regenerated_page(report, args, page)
    assert "stale" not in text
    burgers = markdown_section(text, "## Learning rate tuned per depth", "### burgers")
    assert "| glorot | adam |" in burgers
    assert "stablegrad(prediction)+adam vs adam: better / same / worse" in text
    assert "The paper's claims, stablegrad(prediction)+adam against adam" in text
    tables = (outdir / "pinn_depth_sweep.md").read_text()
    assert "### glorot init, tuned lr" in tables
    assert "### glorot init, fixed lr" in tables
    for name in ("burgers", "helmholtz", "history", "reference"):
        assert (outdir / f"pinn_depth_sweep_{name}.png").stat().st_size > 10_000
        assert f"](../out/pinn_depth_sweep_{name}.png)" in text  # relative link
    assert "`pinn_depth_sweep_reference.png`: the prediction reference" in text


def test_report_leaves_out_the_reference_figure_without_a_reference_history(
    modules, tiny_csv, tmp_path
):
    """A history without `reference_scale` records: no figure, no line on it."""
    _, report, results = modules
    csv_path = tmp_path / "sweep.csv"
    csv_path.write_text(tiny_csv.read_text())
    history = results.read_history(tiny_csv)
    assert any("reference_scale" in record for record in history.values())
    results.append_history(
        csv_path,
        [
            {
                **dict(zip(results.KEY, key, strict=True)),
                "history": {k: v for k, v in record.items() if k != "reference_scale"},
            }
            for key, record in history.items()
        ],
    )
    page = tmp_path / "depth_sweep.md"
    outdir = tmp_path / "out"
    args = [f"--results={csv_path}", f"--page={page}", f"--outdir={outdir}"]
    assert report.main([*args, "--tune-depth=2"]) == 0
    assert (outdir / "pinn_depth_sweep_history.png").exists()
    assert not (outdir / "pinn_depth_sweep_reference.png").exists()
    assert "reference.png" not in page.read_text()


def test_docs_page_is_generated_from_the_committed_csv(modules):
    """The docs page and tables match the CSV (in a checkout: the working tree)."""
    _, report, _ = modules
    assert report.results.RESULTS.exists()
    assert report.main(["--check"]) == 0, (
        "docs/results/depth_sweep.md or pinn_depth_sweep.md differs from what "
        "benchmarks/pinn_depth_sweep_report.py makes of the committed CSV"
    )


def test_every_optimizer_builds_as_the_sweep_builds_it(modules):
    """Each `--optimizers` choice takes its learning rate as the sweep injects it."""
    sweep, _, _ = modules
    params = {"w": jnp.ones((3, 2)), "b": jnp.zeros(2)}
    grads = jax.tree.map(lambda p: p + 0.5, params)
    # Every name can be given to --optimizers (a comma-separated list).
    assert sweep.parse_args(["--optimizers", ",".join(sweep.OPTIMIZERS)]).optimizers
    for name, spec in sweep.OPTIMIZERS.items():
        tx = optax.inject_hyperparams(spec.build(100))(learning_rate=1e-3)
        extra = (
            {"reference_scale": jnp.asarray(1.0)} if spec.prediction_reference else {}
        )
        state = tx.init(params)
        for _ in range(2):  # a warmup's first step is zero
            updates, state = tx.update(grads, state, params, **extra)
        leaves = jax.tree.leaves(updates)
        assert all(bool(jnp.all(jnp.isfinite(u))) for u in leaves), name
        assert any(bool(jnp.any(u != 0)) for u in leaves), name


def test_readings_report_from_a_tiny_sweep(modules, tiny_csv, tmp_path):
    """The side report on the prediction readings reads the sweep's own files."""
    with scripts_imported(BENCHMARKS, ["pinn_long_budget_report"], []) as (report,):
        path = tmp_path / "readings.csv"
        path.write_text(tiny_csv.read_text())
        history = tiny_csv.with_name("sweep_history.jsonl")
        path.with_name("readings_history.jsonl").write_text(history.read_text())
        others = [f"--results={tmp_path / 'none.csv'}", f"--page={tmp_path / 'p.md'}"]
        assert report.main([f"--readings={path}", *others]) == 0
        text = path.with_suffix(".md").read_text()
    # Only the data reading ran; every run logged all three readings.
    assert "| burgers | 2 | data |" in text and "| helmholtz | 3 | data |" in text
    assert "| values |" not in text.split("## The three")[0]
    scale_rows = [
        line
        for line in text.split("## The three")[1].splitlines()
        if "| data |" in line
    ]
    assert len(scale_rows) >= 4  # 2 problems x 2 depths, per lr the protocols chose
    assert all(line.count("->") == 3 for line in scale_rows)  # all three readings
