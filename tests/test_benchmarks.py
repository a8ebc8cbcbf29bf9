"""The overhead benchmark runs end to end in its quick setting."""

import importlib.util
import json
import pathlib
import sys

OVERHEAD = pathlib.Path(__file__).parents[1] / "benchmarks" / "overhead.py"


def test_overhead_benchmark_quick(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("overhead", OVERHEAD)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    module.main(["--quick", "--outdir", str(tmp_path)])
    results = json.loads((tmp_path / "overhead.json").read_text())
    assert (tmp_path / "overhead.md").exists()
    assert results["meta"]["device"] and results["meta"]["date"]
    (depth,) = results["depths"].values()
    assert depth["reference_layer"] == "head"
    assert depth["fallback_check"]["fallback_taken"] is True
    assert "stablegrad+adam" in depth["train_final_loss"]
