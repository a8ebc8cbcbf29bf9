"""The overhead benchmark runs end to end in its quick setting."""

import json
import pathlib

from helpers import load_script

OVERHEAD = pathlib.Path(__file__).parents[1] / "benchmarks" / "overhead.py"


def test_overhead_benchmark_quick(tmp_path, monkeypatch):
    module = load_script(OVERHEAD, "overhead", monkeypatch)
    module.main(["--quick", "--outdir", str(tmp_path)])
    results = json.loads((tmp_path / "overhead.json").read_text())
    assert (tmp_path / "overhead.md").exists()
    assert results["meta"]["device"] and results["meta"]["date"]
    (depth,) = results["depths"].values()
    assert depth["reference_layer"] == "head"
    assert depth["fallback_check"]["fallback_taken"] is True
    assert "stablegrad+adam" in depth["train_final_loss"]
