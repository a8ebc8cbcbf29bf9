"""Campaigns as data (benchmarks/campaign.py): a tiny real one, and the real one."""

import json
import pathlib

import pytest
from helpers import scripts_imported

ROOT = pathlib.Path(__file__).parents[1]
BENCHMARKS = ROOT / "benchmarks"
LONG_BUDGET = BENCHMARKS / "campaigns" / "pinn_long_budget.json"


@pytest.fixture(scope="module")
def modules():
    names = ["campaign", "pinn_depth_sweep", "pinn_depth_sweep_results"]
    with scripts_imported(BENCHMARKS, names) as imported:
        yield imported


def _tiny_campaign(tmp_path, results) -> pathlib.Path:
    campaign = {
        "script": "pinn_depth_sweep",
        "options": {
            "results": str(results),
            "problems": "poisson",
            "inits": "critical",
            "width": 4,
            "steps": 4,
            "eval-every": 2,
            "num-interior": 8,
            "num-boundary": 8,
            "eval-resolution": 5,
            "num-validation": 8,
            "lr": 0.001,
            "seeds": "1,2",
        },
        "stages": [
            {
                "name": "first",
                "depths": "2",
                "optimizers": "stablegrad(prediction)+adam+warmup+decay+gradnorm",
            },
            {"name": "second", "depths": "3", "optimizers": "adam"},
            {"name": "extra", "optional": True, "depths": "2", "optimizers": "adam"},
        ],
    }
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(campaign))
    return path


@pytest.mark.slow
def test_a_campaign_runs_its_stages_at_one_rate_and_resumes(modules, tmp_path):
    campaign, _, results = modules
    csv_path = tmp_path / "tiny.csv"
    config = _tiny_campaign(tmp_path, csv_path)
    campaign.main([str(config)])
    rows = results.read_rows(csv_path)
    # No tuning stage: each seed once at the one rate; the optional stage left out.
    assert sorted((r["depth"], r["optimizer"], r["seed"]) for r in rows) == [
        (2, "stablegrad(prediction)+adam+warmup+decay+gradnorm", 1),
        (2, "stablegrad(prediction)+adam+warmup+decay+gradnorm", 2),
        (3, "adam", 1),
        (3, "adam", 2),
    ]
    assert {r["lr"] for r in rows} == {1e-3} and {r["steps"] for r in rows} == {4}
    history = results.read_history(csv_path)
    weighted = [r for r in rows if r["optimizer"].endswith("+gradnorm")]
    for row in weighted:
        weights = history[results.run_key(row)]["loss_weights"]
        assert (
            set(weights) == {"residual", "boundary"} and len(weights["residual"]) == 2
        )
    assert all(
        "loss_weights" not in history[results.run_key(r)]
        for r in rows
        if r not in weighted
    )
    before = csv_path.read_text()
    campaign.main([str(config)])
    assert csv_path.read_text() == before  # resumed: nothing ran twice
    campaign.main([str(config), "--optional"])
    assert len(results.read_rows(csv_path)) == 6


def test_the_long_budget_campaign_names_known_recipes(modules):
    campaign, sweep, _ = modules
    config = campaign.load(LONG_BUDGET)
    assert config["options"]["steps"] == 20000
    assert config["options"]["results"] == "benchmarks/results/pinn_long_budget.csv"
    for stage in config["stages"]:
        args = sweep.parse_args(campaign.stage_argv(config, stage))
        assert args.lr == 1e-3 and args.seeds == [1, 2, 3] and args.width == 50
        assert args.inits == ["critical"]
    required = [s for s in config["stages"] if not s.get("optional")]
    # The deciding cells (depth 32, standard recipe with and without StableGrad)
    # run first.
    assert required[0]["depths"] == "32"
    assert required[0]["optimizers"].split(",") == [
        "adam+warmup+decay+gradnorm",
        "stablegrad(prediction)+adam+warmup+decay+gradnorm",
    ]
    # Each recipe is one registry entry with its own loss weighting.
    weighting = {
        "adam+warmup+decay": None,
        "stablegrad(prediction)+adam+warmup+decay": None,
        "adam+warmup+decay+gradnorm": "grad_norm",
        "stablegrad(prediction)+adam+warmup+decay+gradnorm": "grad_norm",
        "agc+adam+warmup+decay+gradnorm": "grad_norm",
    }
    names = {n for s in config["stages"] for n in s["optimizers"].split(",")}
    assert names == set(weighting)
    for name in names:
        assert sweep.OPTIMIZERS[name].loss_weighting == weighting[name], name


def test_a_campaign_without_stages_is_refused(modules, tmp_path):
    campaign, _, _ = modules
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"script": "pinn_depth_sweep", "options": {}}))
    with pytest.raises(ValueError, match="stages"):
        campaign.load(path)


@pytest.mark.parametrize(
    "name, started",
    [
        # A depth-sweep group tunes over all its depths: started is the group.
        ("pinn_depth_sweep", ("problem", "init", "optimizer")),
        # A long-budget cell is one batch of seeds at one depth.
        ("pinn_long_budget", ("problem", "init", "optimizer", "depth")),
    ],
)
def test_committed_rows_leave_no_pending_runs(modules, name, started):
    """What a campaign has started is complete in the committed rows: nothing
    (grid points the runner would add included) is left to run, so the runner
    resumes across code changes (recipe names, columns, keys)."""
    campaign, sweep, results = modules
    config = campaign.load(BENCHMARKS / "campaigns" / f"{name}.json")
    rows = results.read_rows(ROOT / config["options"]["results"])
    for stage in config["stages"]:
        args = sweep.parse_args(campaign.stage_argv(config, stage))
        for cell in sweep.cell_plan(args):
            fields = ("problem", "init", "optimizer", "depth", "stage")
            where = dict(zip(fields, cell, strict=True))
            ran = results.select(rows, **{k: where[k] for k in started})
            if ran:  # pending_runs reads only the group's rows
                assert not sweep.pending_runs(ran, *cell, args), (stage["name"], cell)


def _tune_rows(errors, **cell):
    """Tuning-seed rows of one group at depth 4: {lr: validation error}."""
    base = {
        "problem": "poisson",
        "width": 50,
        "activation": "tanh",
        "init": "critical",
        "optimizer": "adam",
        "steps": 1500,
        "num_interior": 256,
        "num_boundary": 256,
        "boundary_weight": 100.0,
        "depth": 4,
        "seed": 0,
    }
    return [{**base, **cell, "lr": lr, "val_rel_l2": e} for lr, e in errors.items()]


@pytest.mark.parametrize("top", [True, False])
def test_the_runner_widens_a_grid_at_its_edge_at_most_twice(modules, top):
    _, sweep, _ = modules
    args = sweep.parse_args(["--problems=poisson", "--inits=critical", "--depths=4"])
    args.tune_depth = 4
    grid = sweep.grid_of("adam", "poisson")  # 1e-5 .. 3e-3
    edge, steps = (grid[-1], (1e-2, 3e-2)) if top else (grid[0], (3e-6, 1e-6))
    errors = {lr: 0.5 for lr in grid} | {edge: 0.1}

    def pending(errors):
        rows = _tune_rows(errors)
        return sweep.pending_runs(rows, "poisson", "critical", "adam", 4, "tune", args)

    for step in steps:  # each new point wins again: the next one is added
        assert pending(errors) == [(step, 0)]
        errors[step] = min(errors.values()) / 2
    assert pending(errors) == []  # two points added: no more
    errors = {lr: 0.5 for lr in grid} | {edge: 0.1}
    args.extend_grids = False
    assert pending(errors) == []
    # A rate inside the grid wins: nothing is added.
    args.extend_grids = True
    assert pending({lr: 0.5 for lr in grid} | {grid[2]: 0.1}) == []
