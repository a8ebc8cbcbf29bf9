"""Markdown pieces shared by the benchmark reports: tables, README sections."""

from __future__ import annotations

from collections.abc import Sequence


def table(header: Sequence[str], body: Sequence[Sequence[str]]) -> list[str]:
    """The lines of a markdown table."""
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(row) + " |" for row in body),
    ]


def replace_section(text: str, section: str, start: str, end: str) -> str:
    """`text` with the part from marker `start` to marker `end` replaced.

    `section` must begin with `start` and end with `end` itself.
    """
    if start not in text or end not in text:
        raise ValueError(f"README has no {start} ... {end} markers.")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return head + section + tail
