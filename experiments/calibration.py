"""Calibration rows: pictures whose right answer is known, measured beside every table's cells.

A judge or an artefact metric that cannot order these four cannot be trusted on rendered cells:

* ``content`` -- the content picture unchanged (content distance 0, no artefacts);
* ``content+noise`` -- it plus Gaussian noise (same layout, more high frequencies);
* ``style`` -- the style picture itself (style distance 0);
* ``content+checkerboard`` -- it plus a planted 2-px orange/blue checkerboard at constant
  brightness on its central quarter (the Fourier path's colour artefact: invisible to
  luminance metrics).

Texture tables (no content picture) use the other picture of the pair in the content's place,
so the same four rows say "another texture", "it with noise", "the texture itself", "it with a
checkerboard". The orders (:data:`STYLE`, :data:`CONTENT`, :data:`ARTEFACT`,
:data:`HIGH_FREQUENCY`) are what every metric of their kind must give; the tests check them and
:func:`check` reports them for a finished run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

CALIBRATION = "calibration"
"""The ``backbone`` of calibration cells; their ``prior`` is one of :data:`KINDS`."""
KINDS = ("content", "content+noise", "style", "content+checkerboard")

NOISE_SD = 0.1
CHECKERBOARD_AMPLITUDE = 0.08
ISOLUMINANT_ORANGE_BLUE = np.array([1.0, -(0.2126 - 0.0722) / 0.7152, -1.0])
"""A colour direction with zero Rec. 709 luma: +red -blue (orange) against -red +blue (blue)."""


def with_noise(image: np.ndarray, seed: int = 0, sd: float = NOISE_SD) -> np.ndarray:
    """``image`` plus white Gaussian noise of ``sd``, clipped to [0, 1]."""
    noise = np.random.default_rng(seed).normal(0.0, sd, image.shape)
    return np.clip(image + noise, 0.0, 1.0).astype(np.float32)


def planted_checkerboard(
    image: np.ndarray, amplitude: float = CHECKERBOARD_AMPLITUDE, period: int = 2
) -> np.ndarray:
    """``image`` with an isoluminant checkerboard of ``period`` px on its central quarter."""
    height, width = image.shape[:2]
    rows, cols = np.mgrid[:height, :width]
    sign = np.where(((rows // (period // 2)) + (cols // (period // 2))) % 2 == 0, 1.0, -1.0)
    inside = (abs(rows - height / 2) < height / 4) & (abs(cols - width / 2) < width / 4)
    pattern = (amplitude * sign * inside)[..., None] * ISOLUMINANT_ORANGE_BLUE
    return np.clip(image + pattern, 0.0, 1.0).astype(np.float32)


def picture(kind: str, content: np.ndarray, style: np.ndarray, seed: int = 0) -> np.ndarray:
    """The calibration picture ``kind`` for a content/style pair."""
    makers = {
        "content": lambda: content,
        "content+noise": lambda: with_noise(content, seed),
        "style": lambda: style,
        "content+checkerboard": lambda: planted_checkerboard(content),
    }
    return np.asarray(makers[kind](), np.float32)


Order = tuple[tuple[str, ...], tuple[str, ...]]
"""``(better, worse)``: every ``better`` row must score lower than every ``worse`` row."""
STYLE: Order = (("style",), ("content", "content+noise", "content+checkerboard"))
CONTENT: Order = (("content",), ("style",))
ARTEFACT: Order = (("content", "style"), ("content+checkerboard",))
HIGH_FREQUENCY: Order = (("content",), ("content+noise", "content+checkerboard"))


def violations(order: Order, values: Mapping[str, float | None]) -> list[str]:
    """The pairs ``better >= worse`` that break ``order`` among one group's calibration values
    (``values``: kind -> metric); missing values are not judged."""
    better, worse = order
    broken = []
    for low in better:
        for high in worse:
            a, b = values.get(low), values.get(high)
            if a is not None and b is not None and not a < b:
                broken.append(f"{low} {a:.3g} >= {high} {b:.3g}")
    return broken


def check(
    calibrations: Mapping[str, Mapping[str, Mapping[str, float | None]]],
    order_of: Callable[[str], Order | None],
) -> dict[str, list[str]]:
    """Per metric with an order, every violation over the groups' calibration values
    (``calibrations``: group -> kind -> metrics); an empty list means ranked correctly."""
    report: dict[str, list[str]] = {}
    for group, rows in calibrations.items():
        names = dict.fromkeys(name for row in rows.values() for name in row)
        for metric in names:
            if (order := order_of(metric)) is None:
                continue
            values = {kind: row.get(metric) for kind, row in rows.items()}
            report.setdefault(metric, []).extend(f"{group}: {v}" for v in violations(order, values))
    return report
