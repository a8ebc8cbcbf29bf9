"""The stress benchmark's results file: columns, reading, appending.

One CSV row per run, keyed by `KEY`: ``first_nonfinite_step`` is the first step
(1-based) whose minibatch loss was not finite, 0 if none; ``final_minibatch_loss``
the mean over the last chunk of steps; ``final_train_loss`` the loss on up to
``--eval-examples`` train images, unaugmented, after the last step;
``test_accuracy`` on the test split (BatchNorm in inference mode); ``wall_s``
the seed's time (evaluation included, and compilation for a cell's first seed).
"""

from __future__ import annotations

import math
import pathlib
from collections.abc import Iterable
from typing import Any

import csvrows

_CELL = ("model", "width", "dataset", "optimizer", "lr", "variant")
KEY = (*_CELL, "steps", "batch_size", "seed")
_LOSSES = ("initial_loss", "final_minibatch_loss", "final_train_loss")
_MEASURED = ("first_nonfinite_step", *_LOSSES, "test_accuracy", "wall_s")
COLUMNS = (*KEY, *_MEASURED, "device", "date", "git_commit", "jax")
RESULTS = pathlib.Path(__file__).resolve().parent / "results" / "bnfree_stress.csv"
_INTS = ("width", "steps", "batch_size", "seed", "first_nonfinite_step")
_FLOATS = ("lr", *(m for m in _MEASURED if m not in _INTS))


def read_rows(path: str | pathlib.Path) -> list[dict[str, Any]]:
    """The rows of a results file, typed (none if it does not exist yet)."""
    return csvrows.read_rows(path, COLUMNS, ints=_INTS, floats=_FLOATS)


def _text(name: str, value: Any) -> str:
    return csvrows.float_text(value) if name in _FLOATS else str(value)


def append_rows(path: str | pathlib.Path, rows: Iterable[dict[str, Any]]) -> None:
    """Appends rows (writing the header first into a new file)."""
    text = ({k: _text(k, row[k]) for k in COLUMNS} for row in rows)
    csvrows.append_rows(path, COLUMNS, text)


def run_key(row: dict[str, Any]) -> tuple[str, ...]:
    """What identifies a run, every field as written in the file."""
    return tuple(_text(k, float(row[k]) if k == "lr" else row[k]) for k in KEY)


def append_history(path: str | pathlib.Path, records: Iterable[dict]) -> None:
    """Appends {"key": [...], "loss": [...], ...} records of per-step lists, NaN
    and inf as null (the committed file's earliest lines have the loss only)."""
    digits = lambda name, v: round(v, 5) if name == "loss" else float(f"{v:.4g}")
    rounded = lambda name, v: digits(name, v) if math.isfinite(v) else None
    lines = (
        {k: list(v) if k == "key" else [rounded(k, x) for x in v] for k, v in r.items()}
        for r in records
    )
    csvrows.append_history(path, lines)


def read_logs(path: str | pathlib.Path) -> dict[tuple, dict[str, list[float]]]:
    """Every per-step log by run key (null as NaN); a later line for a key wins."""
    records = csvrows.read_history(path, key=lambda record: tuple(record["key"]))
    return {
        key: {
            name: [math.nan if v is None else v for v in values]
            for name, values in record.items()
            if name != "key"
        }
        for key, record in records.items()
    }


def read_history(path: str | pathlib.Path) -> dict[tuple, list[float]]:
    """Per-step losses by run key (null as NaN); a later line for a key wins."""
    return {key: logs["loss"] for key, logs in read_logs(path).items()}
