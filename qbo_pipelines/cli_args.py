"""Argument types for the command line: numbers checked against the range the command can
use, so a typo or an absurd value is a one-line usage error, never a traceback from deep inside
(a count that overflows Postgres, a negative count that moves a sequence backwards)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

MAX_COUNT = 10_000_000
"""The most records a demo command generates (a 100k-sales company is the largest benched)."""
MAX_ID = 2**63 - 1
"""Postgres bigint: the largest row id."""


def whole(lo: int, hi: int) -> Callable[[str], int]:
    """A whole number in [lo, hi]."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"a whole number, not {text!r}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"between {lo:,} and {hi:,}, not {value:,}")
        return value

    parse.__name__ = "whole number"
    return parse


def positive(hi: float) -> Callable[[str], float]:
    """A number above 0 and at most ``hi``."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"a number, not {text!r}") from None
        if not 0 < value <= hi:  # NaN fails this too
            raise argparse.ArgumentTypeError(f"above 0 and at most {hi:,g}, not {text}")
        return value

    parse.__name__ = "number"
    return parse


COUNT = whole(0, MAX_COUNT)
PORT = whole(0, 65535)
ROW_ID = whole(1, MAX_ID)
LINES = whole(1, 100_000)

__all__ = ["COUNT", "LINES", "MAX_COUNT", "MAX_ID", "PORT", "ROW_ID", "positive", "whole"]
