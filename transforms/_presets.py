"""Named transform stacks: ``none``, Lucid's ``standard`` and a lighter ``mild``."""

from __future__ import annotations

from paramviz.transforms import _core as core
from paramviz.transforms._core import Transform

STANDARD_SCALES = tuple(1 + (i - 5) / 50.0 for i in range(11))  # 0.90, 0.92, ..., 1.10
STANDARD_ANGLES = tuple(range(-10, 11)) + 5 * (0,)  # degrees; P(0) = 6/26 as in Lucid

none: Transform = core.identity

standard: Transform = core.compose(
    core.pad(12, mode="constant", value=0.5),
    core.jitter(8),
    core.random_scale(STANDARD_SCALES),
    core.random_rotate(STANDARD_ANGLES),
    core.jitter(4),
)
"""Lucid's ``standard_transforms``; an H×W image comes out (H+12)×(W+12) (128 -> 140)."""

mild: Transform = core.compose(
    core.pad(4, mode="reflect"),
    core.jitter(4),
    core.random_scale(tuple(1 + (i - 5) / 100.0 for i in range(11)), fill="reflect"),
    core.random_rotate(tuple(range(-5, 6)), fill="reflect"),
)
"""A lighter stack (±5 % scale, ±5°, reflected borders, no grey): H×W comes out (H+4)×(W+4)."""

PRESETS: dict[str, Transform] = {"none": none, "standard": standard, "mild": mild}


def preset(name: str) -> Transform:
    """The preset called ``name``; ``ValueError`` naming the valid ones otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        valid = ", ".join(sorted(PRESETS))
        raise ValueError(f"unknown transform preset {name!r}; choose one of: {valid}") from None
