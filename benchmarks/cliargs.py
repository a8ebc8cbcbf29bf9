"""Command-line pieces shared by the benchmark scripts."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence


def name_list(choices: Sequence[str], kind: str) -> Callable[[str], list[str]]:
    """An argparse ``type``: a comma-separated, non-empty list of `choices`."""

    def parse(text: str) -> list[str]:
        names = [n for n in text.split(",") if n]
        unknown = [n for n in names if n not in choices]
        if unknown or not names:
            raise argparse.ArgumentTypeError(
                f"unknown {kind} {unknown or text!r}; choose from {', '.join(choices)}"
            )
        return names

    return parse


def positive(kind: type) -> Callable[[str], int | float]:
    """An argparse ``type``: a number of `kind` (int or float) above zero."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"not a {kind.__name__}: {text!r}"
            ) from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
        return value

    return parse
