"""Command-line arguments the benchmarks share."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def whole_numbers(low: int, high: int) -> Callable[[str], list[int]]:
    """An argparse ``type``: comma-separated whole numbers, each from ``low`` to ``high`` (an error
    naming the option otherwise, in one line)."""

    def parse(text: str) -> list[int]:
        try:
            numbers = [int(part) for part in text.split(",") if part.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"comma-separated whole numbers expected, got {text!r}") from None
        if not numbers or min(numbers) < low or max(numbers) > high:
            raise argparse.ArgumentTypeError(f"each must be between {low:,} and {high:,}, got {text!r}")
        return numbers

    return parse
