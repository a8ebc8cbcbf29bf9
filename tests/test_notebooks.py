"""The Colab notebooks (notebooks/): each runs top to bottom in its small setting.

The committed copies keep the outputs of a full run; they are checked for
error cells and for the device line, then executed afresh (SGO_NOTEBOOK_SMALL=1)
in a kernel of this Python.
"""

import os
import pathlib

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((pathlib.Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))
# The test's own, smaller small setting: edits of the in-memory copy (the files
# are never written). Each text must be found, so a changed notebook fails here.
SMALLER = {
    "adamp": [("STEPS = 10 if SMALL", "STEPS = 4 if SMALL")],
    "deep_pinn": [("(4, 20) if SMALL", "(2, 4) if SMALL")],
    "quickstart": [("STEPS = 20 if SMALL", "STEPS = 4 if SMALL")],
}


def test_there_are_four_notebooks():
    assert [p.stem for p in NOTEBOOKS] == [
        "adamp",
        "bnfree_resnet",
        "deep_pinn",
        "quickstart",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_outputs_are_from_a_full_run_without_errors(path):
    notebook = nbformat.read(path, as_version=4)
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "device: " in text and "small: False" in text
    assert any("image/png" in o.get("data", {}) for o in outputs)
    assert "colab.research.google.com" in notebook.cells[0].source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
@pytest.mark.slow
def test_runs_top_to_bottom_in_the_small_setting(path, monkeypatch, tmp_path):
    monkeypatch.setenv("SGO_NOTEBOOK_SMALL", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(path, as_version=4)
    for old, new in SMALLER.get(path.stem, []):
        (cell,) = [c for c in notebook.cells if old in c.source]
        cell.source = cell.source.replace(old, new)
    client = NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    text = "".join(
        o.get("text", "")
        for c in notebook.cells
        if c.cell_type == "code"
        for o in c.outputs
        if o.output_type == "stream"
    )
    assert "small: True" in text
    assert os.environ["SGO_NOTEBOOK_SMALL"] == "1"
