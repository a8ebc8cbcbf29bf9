"""The deep-PINN depth sweep (benchmarks/): a tiny real run, its CSV, its report."""

import csv
import importlib
import math
import pathlib
import re

import jax
import jax.numpy as jnp
import matplotlib.colors
import matplotlib.markers
import numpy as np
import optax
import pytest
from helpers import (
    benchmark_scripts,
    regenerated_page,
    scripts_imported,
    tiny_results,
)

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


def _report_part(name: str):
    """A module-scoped fixture: the report's module `pinn_depth_sweep_<name>`."""

    @pytest.fixture(scope="module")
    def part(modules):
        del modules  # imported with the report, as the report sees it
        return importlib.import_module(f"pinn_depth_sweep_{name}")

    return part


cells = _report_part("cells")
verdicts = _report_part("verdicts")
pages = _report_part("pages")
figures = _report_part("figures")


def _section(text: str, *headings: str) -> str:
    """What a markdown page holds under each heading in turn, up to the next
    heading of the same level or above."""
    for heading in headings:
        level = len(heading.split(" ")[0])
        body = text.split(f"\n{heading}\n", 1)[1]
        ends = [body.find(f"\n{'#' * n} ") for n in range(1, level + 1)]
        text = body[: min((e for e in ends if e >= 0), default=len(body))]
    return text


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
    burgers = _section(text, "## Learning rate tuned per depth", "### burgers")
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


def test_the_docs_page_reads_without_scrolling():
    """Its tables fit a page's width; where the runs ran is one short line."""
    text = (ROOT / "docs" / "results" / "depth_sweep.md").read_text()
    rows = [line.replace("**", "") for line in text.splitlines() if line[:1] == "|"]
    assert rows and max(map(len, rows)) <= 120
    day = r"\d{4}-\d\d-\d\d"
    span = rf"\d+ runs on [^;]+, {day}( to {day})?, (commit \S+|commits \S+ to \S+)"
    assert re.search(rf"\({span}(; {span})*\); ", text)


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


def test_grids_follow_the_optimizer_family_and_the_problem(modules):
    sweep, _, _ = modules
    adam = sweep.grid_of("adam", "burgers")
    assert adam == sweep.grid_of("stablegrad+adam", "poisson")
    assert min(adam) == 1e-5  # the Adam-family grid reaches down to 1e-5
    assert max(sweep.grid_of("sgd-momentum", "poisson")) < max(adam) / 10
    assert sweep.grid_of("sgd-momentum", "burgers") != sweep.grid_of(
        "sgd-momentum", "helmholtz"
    )
    assert sweep.grid_of("stablegrad(1)+sgd-momentum", "poisson") == adam


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
    assert results.choose_lr(rows, [], **cell) is None  # a group not started
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


def _synthetic_sweep(cells, errors):
    """A complete one-lr sweep: ``errors[(init, optimizer, depth)]`` on every seed."""
    setting = {
        "width": 8,
        "activation": "tanh",
        "steps": 2,
        "num_interior": 4,
        "num_boundary": 4,
        "boundary_weight": 1.0,
        "device": "cpu",
        "date": "2026-12-03",
        "git_commit": "0000000",
    }
    rows = [
        {
            **setting,
            "problem": "poisson",
            "init": init,
            "optimizer": optimizer,
            "depth": depth,
            "lr": 1e-3,
            "seed": seed,
            "final_rel_l2": error,
            "val_rel_l2": error,
        }
        for (init, optimizer, depth), error in errors.items()
        for seed in (0, 1, 2, 3)
    ]
    return cells.Sweep(rows, tune_seed=0, tune_depth=8)


@pytest.mark.parametrize(
    "ours, verdict, trains",
    [
        (0.5, "holds here", "StableGrad trains more of them (6 against 3)"),
        (2.0, "is more often worse", "StableGrad trains fewer of them (0 against 3)"),
        (1.0, "neither is consistently better", "both train as many (3)"),
    ],
)
def test_the_paper_claims_are_judged_from_the_numbers(
    cells, verdicts, ours, verdict, trains
):
    """The page's verdict on each claim follows the CSV, whichever way it goes."""
    base = {4: 0.04, 8: 0.08, 16: 0.09, 32: 0.16}  # 16 and 32 are "deep"
    errors = {("glorot", "adam", d): e for d, e in base.items()}
    errors |= {("glorot", "stablegrad+adam", d): e * ours for d, e in base.items()}
    text = "\n".join(verdicts.claims(_synthetic_sweep(cells, errors), *OURS_BASE))
    assert "*Better accuracy at matched depth* " in text and verdict in text
    assert ("holds here" in text) == (ours < 1)
    assert trains in text
    assert "| poisson | glorot | 4 (0.040) |" in text  # adam's best depth
    if ours == 1.0:
        assert "Better than adam" in text and text.count("nowhere") == 2


PAPER = "stablegrad(prediction)+adam"


def test_the_paper_variant_gets_one_comparison_line_per_baseline(cells, verdicts):
    """Lines for the paper's variant first, each verdict from its own numbers."""
    factors = {  # error at every depth, relative to the paper's variant
        "stablegrad+sgd-momentum": 1.0,  # its base is not run: no line
        "stablegrad(prediction)+adam+decay": 2.0,  # worse than adam+decay
        "agc+adam": 0.5,  # better than the paper's variant
        "adam": 2.0,
        "stablegrad(prediction-global)+adam": 2.0,
        "adam+warmup+decay": 2.0,  # one seed missing: no complete cell
        PAPER: 1.0,
        "adam+decay": 1.05,  # the same
    }
    errors = {
        ("glorot", opt, depth): 0.05 * factor
        for opt, factor in factors.items()
        for depth in (4, 8)
    }
    full = _synthetic_sweep(cells, errors)
    rows = [
        r
        for r in full.rows
        if not (r["optimizer"] == "adam+warmup+decay" and r["seed"] == 3)
    ]
    sweep = cells.Sweep(rows, tune_seed=0, tune_depth=8)
    assert verdicts.judged_pairs(sweep.optimizers) == [
        (PAPER, "adam"),
        (PAPER, "adam+decay"),
        (PAPER, "adam+warmup+decay"),
        (PAPER, "agc+adam"),
        (PAPER, "stablegrad(prediction-global)+adam"),
        (PAPER, "stablegrad(prediction)+adam+decay"),
        ("stablegrad(prediction)+adam+decay", "adam+decay"),
        ("stablegrad(prediction-global)+adam", "adam"),
    ]
    text = verdicts.comparisons(sweep)
    lines = [line for line in text if line.startswith("* ")]
    one = "* **{} vs {}: better / same / worse** in {} of 2 cells with lr per depth"
    expected = [
        one.format(PAPER, "adam", "2 / 0 / 0") + " (ratio 0.50)",
        one.format(PAPER, "adam+decay", "0 / 2 / 0") + " (ratio 0.95)",
        one.format(PAPER, "agc+adam", "0 / 0 / 2") + " (ratio 2.00)",
        one.format(PAPER, "stablegrad(prediction-global)+adam", "2 / 0 / 0"),
        one.format(PAPER, "stablegrad(prediction)+adam+decay", "2 / 0 / 0"),
        one.format("stablegrad(prediction)+adam+decay", "adam+decay", "0 / 0 / 2"),
        one.format("stablegrad(prediction-global)+adam", "adam", "0 / 2 / 0"),
    ]
    assert len(lines) == len(expected)
    for line, start in zip(lines, expected, strict=True):
        assert line.startswith(start), (line, start)
        assert ", in " in line and "with one lr" in line  # both protocols
    assert "adam+warmup+decay" not in "\n".join(text)
    # Each pair's table: per depth and over all, under both protocols.
    table = _section("\n".join(text), f"### {PAPER} vs adam")
    assert "| 4 | 1/0/0 | 3 vs 0 (of 3) | 1/0/0 | 3 vs 0 (of 3) |" in table
    assert "| all | 2/0/0 | 6 vs 0 (of 6) | 2/0/0 | 6 vs 0 (of 6) |" in table


@pytest.mark.parametrize(
    ("factor", "verdict"), [(0.5, "2 / 0 / 0"), (2.0, "0 / 0 / 2")]
)
def test_the_no_argument_references_are_judged_against_the_default(
    cells, verdicts, factor, verdict
):
    """The candidates for `stablegrad()`'s default, against the default."""
    candidate = "stablegrad(geometric_mean)+adam"
    factors = {"adam": 1.0, "stablegrad+adam": 1.0, candidate: factor}
    errors = {
        ("glorot", opt, depth): 0.05 * f
        for opt, f in factors.items()
        for depth in (4, 8)
    }
    sweep = _synthetic_sweep(cells, errors)
    assert verdicts.judged_pairs(sweep.optimizers) == [
        ("stablegrad+adam", "adam"),
        (candidate, "adam"),
        (candidate, "stablegrad+adam"),
    ]
    lines = [line for line in verdicts.comparisons(sweep) if line.startswith("* ")]
    assert lines[-1].startswith(
        f"* **{candidate} vs stablegrad+adam: better / same / worse** in {verdict} "
    )


def test_the_claims_are_judged_per_variant_the_papers_first(cells, verdicts, pages):
    base = {4: 0.04, 8: 0.08}
    factors = {"adam": 1.0, "stablegrad+adam": 2.0, PAPER: 0.5, "sgd-nope": 1.0}
    errors = {
        ("glorot", opt, d): e * factor
        for opt, factor in factors.items()
        for d, e in base.items()
    }
    errors[("glorot", "stablegrad+sgd-momentum", 4)] = 0.1  # no base run
    sweep = _synthetic_sweep(cells, errors)
    text = "\n".join(verdicts.every_claims(sweep))
    headers = [line for line in text.splitlines() if "The paper's claims" in line]
    assert [h.split(", ")[1].split("**")[0] for h in headers] == [
        f"{PAPER} against adam",
        "stablegrad+adam against adam",
    ]
    paper, output = text.split(headers[1])
    assert "holds here" in paper and "is more often worse" in output
    assert "| poisson | glorot | 4 (0.040) | 4 (0.020) |" in paper
    shown = verdicts.in_headline_order(sweep.optimizers)
    assert shown == [  # others after HEADLINE's, in the order they were run
        PAPER,
        "adam",
        "stablegrad+adam",
        "stablegrad+sgd-momentum",
        "sgd-nope",
    ]
    table = pages.problem_table(sweep, "tuned", "poisson", shown)
    assert [row.split(" | ")[1] for row in table[2:]] == shown


def test_the_reference_figure_draws_the_data_reading_where_it_was_logged(
    modules, cells, figures, tmp_path
):
    _, _, results = modules
    errors = {("glorot", opt, 8): 0.1 for opt in ("adam", PAPER)}
    sweep = _synthetic_sweep(cells, errors)
    history = {}
    for r in sweep.rows:
        record = {"step": [1, 2], "loss": [r["seed"], 1.0]}
        if r["optimizer"] == PAPER:
            data = [10.0 * r["seed"], 1.0]
            record["reference_scale"] = {"data": data, "values": [0.0, 0.0]}
        history[results.run_key(r)] = record
    found = figures.curves(sweep, history, 8, figures.REFERENCE)
    assert list(found) == [("poisson", "glorot", PAPER)]
    curve = found["poisson", "glorot", PAPER]
    assert curve["reference_scale/data"] == [20.0, 1.0]  # median of seeds 1-3
    assert curve["loss"] == [2.0, 1.0] and curve["seeds"] == 3
    assert figures.curves(sweep, history, 4, figures.REFERENCE) == {}  # no depth 4
    tuning_only = {
        k: v for k, v in history.items() if k[results.KEY.index("seed")] == 0
    }
    assert figures.curves(sweep, tuning_only, 8, figures.REFERENCE) == {}
    path = tmp_path / "reference.png"
    figures.plot_reference(sweep, found, 8, path)
    assert path.stat().st_size > 10_000
    assert "(3 runs in 1 problem x init x optimizer groups)" in (
        figures.reference_note(found, 8)
    )


def test_every_recipe_has_a_colour_and_marker_of_its_own(modules, figures):
    """No two optimizers in one figure look alike: each of the sweep's recipes
    has its own (colour, marker); a name no recipe has gets a spare pair."""
    sweep, _, _ = modules
    assert set(sweep.OPTIMIZERS) <= set(figures.STYLES)
    drawn = figures.styles([*sweep.OPTIMIZERS, "renamed+adam", "gone+sgd"])
    assert len(set(drawn.values())) == len(drawn)
    for colour, marker in drawn.values():
        assert matplotlib.colors.is_color_like(colour), colour
        assert marker in matplotlib.markers.MarkerStyle.markers, marker


def test_the_init_comparison_is_judged_per_optimizer(cells, verdicts):
    errors = {
        (init, opt, depth): 0.1 * factor
        for depth in (4, 8)
        for opt, init, factor in (
            ("adam", "glorot", 1.0),
            ("adam", "critical", 0.5),
            ("stablegrad+adam", "glorot", 1.0),
            ("stablegrad+adam", "critical", 2.0),
        )
    }
    sweep = _synthetic_sweep(cells, errors)
    text = verdicts.init_comparison(sweep, OURS_BASE[::-1], "critical", "glorot")
    assert "adam: better in 2, the same in 0, worse in 0 of 2" in text
    assert "poisson 0.50" in text and "poisson 2.00" in text
    assert "stablegrad+adam: better in 0, the same in 0, worse in 2 of 2" in text
    assert verdicts.init_comparison(sweep, OURS_BASE, "orthogonal", "glorot") is None


def test_tables_leave_out_groups_that_were_not_run(cells, pages):
    """An optimizer run under one init only gets no empty rows under the other."""
    errors = {
        (init, "adam", depth): 0.1
        for init in ("glorot", "critical")
        for depth in (4, 8)
    }
    errors |= {("critical", "sgd-momentum", depth): 0.2 for depth in (4, 8)}
    sweep = _synthetic_sweep(cells, errors)
    shown = ["adam", "sgd-momentum"]
    for protocol in ("tuned", "fixed"):
        text = "\n".join(pages.protocol_tables(sweep, protocol, shown))
        table = _section(text, "### poisson")
        assert "| glorot | adam |" in table
        assert "| critical | sgd-momentum |" in table
        assert "| glorot | sgd-momentum |" not in table
    full = pages.full_tables(sweep)
    glorot, critical = full.split("## poisson")[1].split("### critical init, tuned")
    assert "| sgd-momentum |" not in glorot and "| sgd-momentum |" in critical


def test_the_lowest_median_of_each_depth_is_in_bold(cells, pages):
    """Per problem: the best cell of each depth (ties: each), never a diverged one."""
    errors = {
        ("glorot", "adam", 4): 0.1,
        ("glorot", "adam", 8): 0.3,
        ("glorot", "adam", 16): math.nan,  # the only run at depth 16
        ("critical", "adam", 4): 0.2,
        ("critical", "adam", 8): 0.2,
        ("critical", "sgd-momentum", 4): math.nan,
        ("critical", "sgd-momentum", 8): 0.2,
    }
    sweep = _synthetic_sweep(cells, errors)
    table = pages.problem_table(sweep, "tuned", "poisson", ["adam", "sgd-momentum"])
    assert table[0] == "| init | optimizer | depth 4 | depth 8 | depth 16 |"
    assert table[2:] == [
        "| glorot | adam | **0.100 (0/3)** | 0.300 (0/3) | div (0/3) |",
        "| critical | adam | 0.200 (0/3) | **0.200 (0/3)** | – |",
        "| critical | sgd-momentum | div (0/3) | **0.200 (0/3)** | – |",
    ]


def test_the_provenance_gives_the_first_and_last_commit_per_device(cells, pages):
    """Runs, dates and the commits of the first and the last run, not every one."""
    sweep = _synthetic_sweep(cells, {("glorot", "adam", d): 0.1 for d in (4, 8)})
    assert pages.provenance(sweep) == "8 runs on cpu, 2026-12-03, commit 0000000"
    for i, row in enumerate(sweep.rows):  # in the order run
        row |= {"date": f"2026-12-0{1 + i // 3}", "git_commit": f"c{i}"}
    sweep.rows[-1]["device"] = "gpu"
    assert pages.provenance(sweep) == (
        "7 runs on cpu, 2026-12-01 to 2026-12-03, commits c0 to c6; "
        "1 runs on gpu, 2026-12-03, commit c7"
    )


def test_the_history_note_counts_runs_without_a_history(modules, cells, figures):
    _, _, results = modules
    errors = {("glorot", opt, 4): 0.1 for opt in ("adam", "stablegrad+adam")}
    sweep = _synthetic_sweep(cells, errors)
    history = {results.run_key(r): {} for r in sweep.rows if r["optimizer"] == "adam"}
    note = figures.history_note(sweep, history, 4)
    assert "4 of 8 runs have a per-step history" in note
    assert "(poisson glorot stablegrad+adam: 4)" in note
    history |= {results.run_key(r): {} for r in sweep.rows}
    assert figures.history_note(sweep, history, 4).endswith("history.jsonl`.")


def test_lrs_replace_the_grid(modules):
    sweep, _, _ = modules
    args = sweep.parse_args(["--lrs", "3e-4", "--depths", "32", "--tune-depth", "32"])
    runs = sweep.pending_runs([], "poisson", "critical", "adam", 32, "tune", args)
    assert runs == [(3e-4, 0)]
    for bad in ("0", "x", "-1e-3", "nan"):
        with pytest.raises(SystemExit):
            sweep.parse_args(["--lrs", bad])


def test_schedules_follow_the_run_length(modules):
    sweep, _, _ = modules
    decay = sweep.OPTIMIZERS["adam+decay"].schedule(1500)
    assert float(decay(0)) == 1.0
    assert float(decay(1500)) == pytest.approx(0.1, rel=1e-6)
    warm = sweep.OPTIMIZERS["adam+warmup+decay"].schedule(1500)
    assert float(warm(0)) == 0.0
    assert float(warm(150)) == pytest.approx(1.0)
    assert float(warm(1500)) == pytest.approx(0.1, rel=1e-5)
    assert float(sweep.OPTIMIZERS["adam+decay(1%)"].schedule(20)(20)) == (
        pytest.approx(0.01, rel=1e-5)
    )
    # The grid's lr scales the schedule, under inject_hyperparams.
    tx = optax.inject_hyperparams(sweep.OPTIMIZERS["adam+decay"].build(10))(
        learning_rate=2e-3
    )
    params = {"w": jnp.ones((2, 2))}
    state = tx.init(params)
    for _ in range(10):
        updates, state = tx.update(params, state, params)
    np.testing.assert_allclose(updates["w"], -2e-3 * 0.1 ** (9 / 10), rtol=1e-4)


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
    with scripts_imported(BENCHMARKS, ["pinn_prediction_readings_report"], []) as (
        readings,
    ):
        path = tmp_path / "readings.csv"
        path.write_text(tiny_csv.read_text())
        history = tiny_csv.with_name("sweep_history.jsonl")
        path.with_name("readings_history.jsonl").write_text(history.read_text())
        assert readings.main([f"--results={path}"]) == 0
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
