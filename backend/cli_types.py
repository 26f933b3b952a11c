"""What the `python -m backend` commands share: argument types, so every command words a bad value alike,
and the name their stored runs are recorded under."""

from __future__ import annotations

import argparse
from collections.abc import Callable

CLI_USER = "cli"  # the audit log's name for runs started from the command line


def whole_number(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least `minimum`, with a message naming the problem."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected at least {minimum}, got {value}")
        return value

    return parse
