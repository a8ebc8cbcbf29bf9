"""The deep-PINN depth sweep's report (benchmarks/): verdicts, pages and figures
from synthetic cells, the flags and the recipes as the sweep builds them.

The tiny real sweep and what is made from it: test_pinn_depth_sweep_runs.py.
"""

import importlib
import math
import pathlib
import re

import jax.numpy as jnp
import matplotlib.colors
import matplotlib.markers
import numpy as np
import optax
import pytest
from helpers import benchmark_scripts, markdown_section

ROOT = pathlib.Path(__file__).parents[1]
OURS_BASE = ("stablegrad+adam", "adam")  # the pair the results page judges

modules = benchmark_scripts("pinn_depth_sweep")


def _report_part(name: str):
    """A module-scoped fixture: the report's module `pinn_depth_sweep_<name>`."""

    @pytest.fixture(scope="module")
    def part(modules):
        del modules  # imported with the report, as the report sees it
        return importlib.import_module(f"pinn_depth_sweep_{name}")

    return part


cells = _report_part("results")  # the rows read as cells (`Sweep`)
verdicts = _report_part("report")  # the comparisons and claims
pages = _report_part("report")  # the pages
figures = _report_part("figures")


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
    table = markdown_section("\n".join(text), f"### {PAPER} vs adam")
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
    assert shown == [  # in the registry's order, others after it as they were run
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
        table = markdown_section(text, "### poisson")
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
