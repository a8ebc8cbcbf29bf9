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
