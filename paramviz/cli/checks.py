"""Flag checks every command shares, made before any work: numbers by their ranges (argparse
types, so a bad value is one line naming its flag), ``--force`` and ``--max-pixels``. Outputs
are checked with :func:`paramviz.io.check_output`."""

from __future__ import annotations

import argparse
import itertools
import math
from collections.abc import Callable
from typing import Any

from paramviz.vocabulary import MAX_IMAGE_PIXELS, SEED_LIMIT


def whole(minimum: int = 0, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number in ``[minimum, maximum]``."""
    wanted = f"a whole number >= {minimum}" + (f" and <= {maximum}" if maximum is not None else "")

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}") from None
        if value < minimum or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}")
        return value

    return parse


def number(
    minimum: float | None = None, maximum: float | None = None, *, above: float | None = None
) -> Callable[[str], float]:
    """An argparse type: a finite number, ``>= minimum``, ``> above``, ``<= maximum``."""
    bounds = [
        f">= {minimum:g}" if minimum is not None else "",
        f"> {above:g}" if above is not None else "",
        f"<= {maximum:g}" if maximum is not None else "",
    ]
    wanted = " and ".join(filter(None, ["a finite number", " and ".join(filter(None, bounds))]))

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if (
            not math.isfinite(value)
            or (minimum is not None and value < minimum)
            or (above is not None and value <= above)
            or (maximum is not None and value > maximum)
        ):
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}")
        return value

    return parse


seed = whole(0, SEED_LIMIT - 1)
positive = whole(1)
count = whole(0)
weight = number(0.0)
rate = number(above=0.0)


def listed(item: Callable[[str], Any], what: str) -> Callable[[str], tuple[Any, ...]]:
    """An argparse type: comma-separated values, each checked by ``item``."""

    def parse(text: str) -> tuple[Any, ...]:
        parts = [part.strip() for part in text.split(",")]
        if not all(parts):
            raise argparse.ArgumentTypeError(f"expected {what} separated by commas, got {text!r}")
        return tuple(item(part) for part in parts)

    return parse


numbers = listed(weight, "finite numbers >= 0")


def sizes(text: str) -> tuple[int, ...]:
    """An argparse type: increasing picture sizes ``256,512`` (whole numbers >= 1)."""
    values = listed(positive, "whole numbers >= 1")(text)
    if any(later <= earlier for earlier, later in itertools.pairwise(values)):
        raise argparse.ArgumentTypeError(f"expected increasing sizes, got {text!r}")
    return values


def add_force_flag(parser: argparse.ArgumentParser) -> None:
    """``--force``: go on when the memory estimate says the machine has too little."""
    parser.add_argument(
        "--force",
        action="store_true",
        help="run even when the memory estimate is more than this machine has available",
    )


def add_max_pixels_flag(parser: argparse.ArgumentParser) -> None:
    """``--max-pixels``: the decompression-bomb limit for input pictures."""
    parser.add_argument(
        "--max-pixels",
        type=positive,
        default=MAX_IMAGE_PIXELS,
        help="refuse input pictures with more pixels than this (decompression bombs)",
    )
