"""The quickstart example runs end to end with tiny settings."""

import json
import math
import pathlib

from helpers import load_script

QUICKSTART = pathlib.Path(__file__).parents[1] / "examples" / "quickstart.py"


def _load_quickstart(monkeypatch):
    return load_script(QUICKSTART, "quickstart", monkeypatch)


def test_quickstart_runs_and_writes_results(tmp_path, monkeypatch, capsys):
    quickstart = _load_quickstart(monkeypatch)
    # 7 steps in chunks of 4 (a full and a partial scan); an SGD grid with a
    # learning rate far too large, so that the diverged path is exercised.
    quickstart.main(
        [
            "--steps=7",
            "--chunk=4",
            "--depth=2",
            "--width=8",
            "--num-train=64",
            "--num-val=64",
            "--adam-lrs",
            "1e-3",
            "--sgd-lrs",
            "1e-2",
            "1e12",
            "--no-progress",
            f"--outdir={tmp_path}",
        ]
    )
    printed = capsys.readouterr().out

    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results["runs"]) == set(quickstart.OPTIMIZERS)
    assert set(results["chosen"]) == set(quickstart.OPTIMIZERS)
    numbers = ("final_train_mse", "final_val_mse", "best_val_mse")
    for name, runs in results["runs"].items():
        assert [r["learning_rate"] for r in runs] == (
            [1e-3] if "adam" in name else [1e-2, 1e12]
        )
        for run in runs:
            assert len(run["val_curve"]) == 7 + 1
            if run["diverged"]:
                assert run["final_val_mse"] is None or run["final_train_mse"] is None
            else:
                assert all(math.isfinite(run[key]) for key in numbers), run
    assert any(r["diverged"] for r in results["runs"]["sgd-momentum"])
    assert results["chosen"]["sgd-momentum"] == 1e-2
    assert math.isfinite(results["init_imbalance"]["ratio"])

    png = tmp_path / "val_mse.png"
    assert png.read_bytes().startswith(b"\x89PNG")

    assert "| optimizer | chosen lr |" in printed
    for name in quickstart.OPTIMIZERS:
        assert f"| {name} |" in printed
