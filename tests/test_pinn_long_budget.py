"""The 20,000-step campaign's results page: generated from rows, either way."""

import pathlib

import pytest
from helpers import scripts_imported

ROOT = pathlib.Path(__file__).parents[1]
BENCHMARKS = ROOT / "benchmarks"


@pytest.fixture(scope="module")
def report():
    names = ["pinn_long_budget_report"]
    with scripts_imported(BENCHMARKS, names, ["pinn_depth_sweep_results"]) as (mod,):
        yield mod


def _rows(report, errors):
    """Rows of ``errors[(problem, depth, recipe)]`` = three seeds' final errors."""
    rows = []
    for (problem, depth, recipe), seeds in errors.items():
        for seed, error in zip((1, 2, 3), seeds, strict=True):
            rows.append(
                {
                    "problem": problem,
                    "depth": depth,
                    "width": 50,
                    "init": "critical",
                    "optimizer": recipe,
                    "lr": 1e-3,
                    "seed": seed,
                    "steps": 20000,
                    "num_interior": 256,
                    "num_boundary": 256,
                    "final_rel_l2": error,
                    "best_rel_l2": error / 2,
                    "wall_s": 100.0,
                    "device": "cpu: test",
                    "date": "2026-12-06",
                    "git_commit": "0000000",
                }
            )
    return rows


@pytest.mark.parametrize("factor, counts", [(0.5, "2 / 0 / 0"), (2.0, "0 / 0 / 2")])
def test_verdicts_follow_the_numbers(report, factor, counts):
    standard = {("poisson", 8): (0.02, 0.03, 0.04), ("burgers", 32): (0.1, 0.2, 0.3)}
    errors = {(p, d, report.STANDARD): e for (p, d), e in standard.items()}
    errors |= {
        (p, d, report.STANDARD_PAPER): tuple(factor * x for x in e)
        for (p, d), e in standard.items()
    }
    found = report.cells(_rows(report, errors))
    lines = report.comparisons(found, seeds=3)
    added = next(line for line in lines if "added to the standard recipe" in line)
    assert f"{counts} of 2 (ratio {factor:.2f}" in added
    assert "poisson 8 " in added and "burgers 32 " in added
    # A comparison with no complete cell says so, not a verdict.
    agc = next(line for line in lines if "AGC" in line)
    assert "no cell has both yet" in agc


def test_a_cell_with_missing_seeds_is_not_judged(report):
    errors = {
        ("helmholtz", 8, report.STANDARD): (0.1, 0.1, 0.1),
        ("helmholtz", 8, report.STANDARD_PAPER): (0.01, 0.01, 0.01),
    }
    rows = _rows(report, errors)
    rows = [
        r for r in rows if not (r["optimizer"] == report.STANDARD and r["seed"] == 3)
    ]
    lines = report.comparisons(report.cells(rows), seeds=3)
    assert "no cell has both yet" in lines[0]


def test_depth_lines_and_table_cells(report):
    errors = {
        ("poisson", 8, report.SCHEDULE): (0.05, 0.2, 0.005),
        ("poisson", 32, report.SCHEDULE): (0.5, 0.6, 0.7),
        ("poisson", 8, report.STANDARD): (0.04, 0.05, 0.06),
    }
    rows = _rows(report, errors)
    found = report.cells(rows)
    depth = [line for line in report.comparisons(found, 3) if "Depth 32" in line]
    assert len(depth) == 1 and report.SCHEDULE in depth[0] and "0 / 0 / 1" in depth[0]
    # Time per step from the interleaved timing of the cell, when there is one.
    timed = {
        "settings": {"problem": "poisson", "depth": 8, "rounds": 3, "steps": 600},
        "device": "cpu: test",
        "date": "2026-12-06",
        "step_s": {"wall": {report.SCHEDULE: [1.0], report.STANDARD: [1.1]}},
        f"wall_median_ratio_to_{report.SCHEDULE}": {report.STANDARD: 1.1},
    }
    text = "\n".join(report.tables(found, {("poisson", 8): timed}))
    # Median [range], seeds under 1e-1 and 1e-2, time per step against the schedule.
    assert (
        "| `adam+warmup+decay` | 8 | 0.050 [0.005, 0.200] | 0.025 | 2/3 | 1/3 | 1.00 |"
        in text
    )
    assert (
        "| `adam+warmup+decay+gradnorm` | 8 | 0.050 [0.040, 0.060] | 0.025 | 3/3 "
        "| 0/3 | 1.10 |" in text
    )
    assert (
        "| `adam+warmup+decay` | 32 | 0.600 [0.500, 0.700] | 0.300 | 0/3 | 0/3 | – |"
        in text
    )
    note = report.timing_note({("poisson", 8): timed})
    assert "overhead.py --only loss-weighting" in note
    # No timing: no time ratio.
    text = "\n".join(report.tables(found, {}))
    assert "| 3/3 | 0/3 | – |" in text


def test_the_page_says_what_the_recipe_leaves_out(report, tmp_path):
    errors = {("burgers", 8, report.STANDARD): (0.1, 0.2, 0.3)}
    source = tmp_path / "long.csv"
    text = report.page(_rows(report, errors), source, tmp_path / "page.md")
    assert "20,000 steps" in text and "no causal weighting" in text
    assert "one learning rate for every recipe" in text and "3 runs" in text


def test_the_committed_page_is_up_to_date(report):
    assert report.main(["--check"]) == 0


@pytest.mark.parametrize(
    "with_weighting, reading",
    [(1.0, "they overlap"), (0.5, "about the same"), (0.25, "gains more")],
)
def test_the_overlap_line(report, with_weighting, reading):
    """StableGrad halves the error on the schedule alone; with the weighting
    it changes it by `with_weighting`."""
    e = (0.1, 0.1, 0.1)
    half = tuple(x / 2 for x in e)
    errors = {
        ("poisson", 8, report.SCHEDULE): e,
        ("poisson", 8, report.PAPER): half,
        ("poisson", 8, report.STANDARD): e,
        ("poisson", 8, report.STANDARD_PAPER): tuple(with_weighting * x for x in e),
    }
    line = report.overlap(report.cells(_rows(report, errors)), seeds=3)
    assert "ratio is 0.50 added to the schedule alone" in line and reading in line
