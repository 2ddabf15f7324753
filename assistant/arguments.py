"""Argument types of the command line: a bad number stops ``argparse`` with exit code 2 and
a message naming the option (``argument --k: must be a whole number of at least 1, not -5``).

The bounds come from :mod:`assistant.limits`, shared with the REST API and the web app, so
that a limit means the same wherever a caller meets it.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

from assistant.limits import MAX_CLI_K as MAX_K


def int_in(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse ``type`` for a whole number in ``[low, high]``."""
    span = f"of at least {low}" if high is None else f"from {low} to {high}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number {span}, not {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be a whole number {span}, not {value}")
        return value

    parse.__name__ = "whole number"  # argparse names the type in its own messages
    return parse


def float_in(low: float, high: float | None = None, low_open: bool = False) -> Callable[[str], float]:
    """An argparse ``type`` for a finite number in ``[low, high]`` (``(low, high]`` with ``low_open``)."""
    span = f"{'above' if low_open else 'at least'} {low:g}" if high is None else f"from {low:g} to {high:g}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number {span}, not {text!r}") from None
        below = value <= low if low_open else value < low
        if not math.isfinite(value) or below or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be a number {span}, not {text}")
        return value

    parse.__name__ = "number"
    return parse


positive_int = int_in(1)
hits_k = int_in(1, MAX_K)
non_negative_int = int_in(0)
fraction = float_in(0.0, 1.0)
positive_float = float_in(0.0, low_open=True)
