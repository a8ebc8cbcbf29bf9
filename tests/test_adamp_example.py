"""The AdamP/SGDP example (examples/adamp): a short real run and its outputs."""

import json
import pathlib

import pytest
from helpers import load_script

SCRIPT = pathlib.Path(__file__).parents[1] / "examples" / "adamp" / "main.py"


@pytest.fixture
def example(monkeypatch):
    return load_script(SCRIPT, "adamp_example", monkeypatch)


def test_short_run_writes_table_curves_and_json(example, tmp_path):
    flags = ["--steps=4", "--seeds=2", "--log-every=2", "--depth=2", "--width=16"]
    results = example.main([*flags, f"--outdir={tmp_path}"])
    written = json.loads((tmp_path / "results.json").read_text())
    assert written["chosen"] == results["chosen"]
    assert set(written["chosen"]) == set(example.OPTIMIZERS)
    for name, (_, grid) in example.OPTIMIZERS.items():
        assert written["chosen"][name] in grid
        runs = written["runs"][name][str(written["chosen"][name])]
        assert len(runs) == 2 and [r["step"] for r in runs[0]] == [2, 4]
        projected = runs[0][-1]["projected_fraction"]
        if name in ("sgdp", "adamp"):
            # Kernels followed by LayerNorm: the cosine test finds them invariant.
            assert projected == 1.0
        else:
            assert projected is None
    table = (tmp_path / "table.md").read_text()
    assert all(f"| {name} |" in table for name in example.OPTIMIZERS)
    assert (tmp_path / "curves.png").stat().st_size > 10_000


def test_bad_flags_exit_with_a_message(example, capsys):
    with pytest.raises(SystemExit) as error:
        example.parse_args(["--steps=0"])
    assert error.value.code == 2
    assert "--steps" in capsys.readouterr().err
