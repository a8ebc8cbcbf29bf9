"""The stress benchmark's results file: columns, reading, appending.

One CSV row per run, keyed by `KEY`. ``first_nonfinite_step`` is the first
step (1-based) whose minibatch loss was NaN or infinite, 0 if none was;
``final_minibatch_loss`` the mean over the last chunk of steps,
``final_train_loss`` the loss on (up to ``--eval-examples``) train images
without augmentation after the last step, ``test_accuracy`` on the whole
test split (BatchNorm in inference mode). ``wall_s`` is the cell's time
(compilation and evaluation included) divided by its number of seeds. The
per-step losses go to ``<stem>_history.jsonl``.
"""

from __future__ import annotations

import csv
import json
import math
import pathlib
from collections.abc import Iterable
from typing import Any

KEY = (
    "model",
    "width",
    "dataset",
    "optimizer",
    "lr",
    "variant",
    "steps",
    "batch_size",
    "seed",
)
_MEASURED = (
    "first_nonfinite_step",
    "initial_loss",
    "final_minibatch_loss",
    "final_train_loss",
    "test_accuracy",
    "wall_s",
)
COLUMNS = (*KEY, *_MEASURED, "device", "date", "git_commit", "jax")
RESULTS = pathlib.Path(__file__).resolve().parent / "results" / "bnfree_stress.csv"
_INTS = ("width", "steps", "batch_size", "seed", "first_nonfinite_step")
_FLOATS = ("lr", *(m for m in _MEASURED if m not in _INTS))


def drop_partial_line(path: str | pathlib.Path) -> None:
    """Removes a last line cut short (a run killed while writing)."""
    path = pathlib.Path(path)
    if path.exists() and path.stat().st_size and not path.read_text().endswith("\n"):
        text = path.read_text()
        path.write_text(text[: text.rfind("\n") + 1])


def read_rows(path: str | pathlib.Path) -> list[dict[str, Any]]:
    """The rows of a results file, typed (none if it does not exist yet)."""
    path = pathlib.Path(path)
    if not path.exists():
        return []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise ValueError(f"{path} has columns {reader.fieldnames}, not {COLUMNS}")
        rows = list(reader)
    for row in rows:
        for name in _INTS:
            row[name] = int(row[name])
        for name in _FLOATS:
            row[name] = float(row[name]) if row[name] else math.nan
    return rows


def _text(name: str, value: Any) -> str:
    if name in _FLOATS:
        return "" if math.isnan(value) else f"{value:.6g}"
    return str(value)


def append_rows(path: str | pathlib.Path, rows: Iterable[dict[str, Any]]) -> None:
    """Appends rows (writing the header first into a new file)."""
    path = pathlib.Path(path)
    new = not path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        if new:
            writer.writeheader()
        writer.writerows({k: _text(k, row[k]) for k in COLUMNS} for row in rows)


def run_key(row: dict[str, Any]) -> tuple[str, ...]:
    """What identifies a run, every field as written in the file."""
    return tuple(_text(k, float(row[k]) if k == "lr" else row[k]) for k in KEY)


def history_path(path: str | pathlib.Path) -> pathlib.Path:
    path = pathlib.Path(path)
    return path.with_name(f"{path.stem}_history.jsonl")


def append_history(path: str | pathlib.Path, records: Iterable[dict]) -> None:
    """Appends {"key": [...], "loss": [...]} records, NaN/inf written as null.

    Written before the rows: a run killed in between is run again and its key
    appears twice; `read_history` keeps the last.
    """
    lines = []
    for record in records:
        loss = [round(v, 5) if math.isfinite(v) else None for v in record["loss"]]
        lines.append(json.dumps({"key": list(record["key"]), "loss": loss}) + "\n")
    target = history_path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("a") as f:
        f.writelines(lines)


def read_history(path: str | pathlib.Path) -> dict[tuple, list[float]]:
    """Per-step losses by run key (null as NaN); a later line for a key wins."""
    target = history_path(path)
    if not target.exists():
        return {}
    out = {}
    for line in target.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # cut short by a kill: that run is run again
        loss = record["loss"]
        out[tuple(record["key"])] = [math.nan if v is None else v for v in loss]
    return out
