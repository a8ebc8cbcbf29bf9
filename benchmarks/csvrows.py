"""Benchmark results files: one CSV row per run plus a JSON-lines history.

A run's row is appended when it ends and runs already in the file are skipped,
so a killed run can leave a last line cut short (`drop_partial_line`) and a
history line without its row (it runs again; the last line for a key wins).
Each benchmark's ``*_results`` module names its columns and their types.
"""

from __future__ import annotations

import csv
import json
import math
import pathlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any


def drop_partial_line(path: str | pathlib.Path) -> bool:
    """Removes a last line cut short (a run killed while writing); True if one was."""
    path = pathlib.Path(path)
    text = path.read_text() if path.exists() else ""
    if not text or text.endswith("\n"):
        return False
    path.write_text(text[: text.rfind("\n") + 1])
    return True


def float_text(value: float | None) -> str:
    """A measured number as written: 6 significant digits, empty if missing (NaN)."""
    return "" if value is None or math.isnan(value) else f"{value:.6g}"


def read_rows(
    path: str | pathlib.Path,
    columns: Sequence[str],
    *,
    ints: Sequence[str] = (),
    floats: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """The rows of a results file, typed (none if it does not exist yet); a
    ValueError if its header is not `columns`."""
    path = pathlib.Path(path)
    if not path.exists():
        return []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != tuple(columns):
            raise ValueError(
                f"{path} has columns {reader.fieldnames}, expected {list(columns)}."
            )
        rows: list[dict[str, Any]] = list(reader)
    for row in rows:
        for name in ints:
            row[name] = int(row[name])
        for name in floats:
            row[name] = float(row[name]) if row[name] != "" else math.nan
    return rows


def append_rows(
    path: str | pathlib.Path,
    columns: Sequence[str],
    rows: Iterable[dict[str, str]],
) -> None:
    """Appends rows already written as text (the header first into a new file)."""
    path = pathlib.Path(path)
    new = not path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns))
        if new:
            writer.writeheader()
        writer.writerows(rows)


def history_path(path: str | pathlib.Path) -> pathlib.Path:
    """Where the histories of a results file go: ``<stem>_history.jsonl``."""
    path = pathlib.Path(path)
    return path.with_name(f"{path.stem}_history.jsonl")


def append_history(path: str | pathlib.Path, records: Iterable[dict]) -> None:
    """Appends one JSON line per record to the history of results file `path`
    (before the rows: a run killed in between runs again; the last line wins)."""
    lines = [json.dumps(record) + "\n" for record in records]
    target = history_path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("a") as f:
        f.writelines(lines)


def read_history(
    path: str | pathlib.Path, key: Callable[[dict], tuple]
) -> dict[tuple, dict]:
    """The history records of results file `path` by `key(record)`; the last wins."""
    target = history_path(path)
    if not target.exists():
        return {}
    out = {}
    for line in target.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # blank, or cut short by a kill: that run is run again
        out[key(record)] = record
    return out
