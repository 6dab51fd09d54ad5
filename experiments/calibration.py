"""Calibration rows: pictures whose right answer is known, measured beside every table's cells.

A judge or an artefact metric that cannot order these cannot be trusted on rendered cells:

* ``content`` -- the content picture unchanged (content distance 0, no artefacts);
* ``content+noise`` -- it plus Gaussian noise (same layout, more high frequencies);
* ``style`` -- the style picture itself (style distance 0);
* ``style+shuffle`` -- the style picture cut into a 4 x 4 grid of tiles put back in a seeded
  random order (the same texture statistics, but seams and a broken large-scale layout);
* ``style+blur`` -- the style picture blurred (the same colours and layout, no fine texture);
* ``content+checkerboard`` -- the content plus a planted 2-px orange/blue checkerboard at
  constant brightness on its central quarter (the Fourier path's colour artefact: invisible to
  luminance metrics).

Texture tables (no content picture) use the other picture of the pair in the content's place,
so the rows say "another texture", "it with noise", "the texture itself", and so on.

The orders are what every metric of its kind must give (:data:`STYLE_ORDERS`,
:data:`CONTENT_ORDERS`, :data:`ARTEFACT`, :data:`HIGH_FREQUENCY`). Any distance that is 0 for a
picture against itself puts the reference first, so the orders that can fail are the others: a
style judge must put the shuffled and the blurred style between the style itself and the
content, and a content judge must find the content under noise closer than the style picture.
The tests check them and :func:`check` reports them for a finished run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

CALIBRATION = "calibration"
"""The ``backbone`` of calibration cells; their ``prior`` is one of :data:`KINDS`."""
KINDS = ("content", "content+noise", "style", "style+shuffle", "style+blur", "content+checkerboard")

NOISE_SD = 0.1
SHUFFLE_GRID = 4
BLUR_SIGMA = 1.0 / 64.0
"""Of the picture's side: 2 px at 128 px, enough to wash out a texture's finest scale."""
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


def shuffled_tiles(image: np.ndarray, seed: int = 0, grid: int = SHUFFLE_GRID) -> np.ndarray:
    """``image`` cut into ``grid`` x ``grid`` tiles put back in a seeded random order (a
    derangement: no tile stays in place); trailing rows and columns that do not fill a tile are
    kept."""
    th, tw = (side // grid for side in image.shape[:2])
    height, width = th * grid, tw * grid
    tiles = image[:height, :width].reshape(grid, th, grid, tw, -1).swapaxes(1, 2)
    tiles = tiles.reshape(grid * grid, th, tw, -1)
    generator = np.random.default_rng(seed)
    order = generator.permutation(len(tiles))
    while np.any(order == np.arange(len(tiles))):
        order = generator.permutation(len(tiles))
    out = np.array(image, np.float32)
    shuffled = tiles[order].reshape(grid, grid, th, tw, -1).swapaxes(1, 2)
    out[:height, :width] = shuffled.reshape(height, width, -1)
    return out


def blurred(image: np.ndarray, sigma: float = BLUR_SIGMA) -> np.ndarray:
    """``image`` under a Gaussian blur of ``sigma`` times its shorter side (per channel)."""
    from scipy.ndimage import gaussian_filter

    radius = sigma * min(image.shape[:2])
    return gaussian_filter(np.asarray(image, np.float32), (radius, radius, 0), mode="reflect")


def picture(kind: str, content: np.ndarray, style: np.ndarray, seed: int = 0) -> np.ndarray:
    """The calibration picture ``kind`` for a content/style pair."""
    makers = {
        "content": lambda: content,
        "content+noise": lambda: with_noise(content, seed),
        "style": lambda: style,
        "style+shuffle": lambda: shuffled_tiles(style, seed),
        "style+blur": lambda: blurred(style),
        "content+checkerboard": lambda: planted_checkerboard(content),
    }
    return np.asarray(makers[kind](), np.float32)


Order = tuple[tuple[str, ...], tuple[str, ...]]
"""``(better, worse)``: every ``better`` row must score lower than every ``worse`` row."""
COPIES = ("style+shuffle", "style+blur")
OTHERS = ("content", "content+noise", "content+checkerboard")
STYLE: Order = (("style",), OTHERS + COPIES)
STYLE_COPIES: Order = (COPIES, OTHERS)
"""A copy of the style is farther in style than the style itself (:data:`STYLE`) but closer
than the content and its variants."""
CONTENT: Order = (("content",), ("style",))
CONTENT_NOISE: Order = (("content+noise",), ("style",))
STYLE_ORDERS = (STYLE, STYLE_COPIES)
CONTENT_ORDERS = (CONTENT, CONTENT_NOISE)
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
    orders_of: Callable[[str], Sequence[Order]],
) -> dict[str, list[str]]:
    """Per metric with orders, every violation over the groups' calibration values
    (``calibrations``: group -> kind -> metrics); an empty list means ranked correctly."""
    report: dict[str, list[str]] = {}
    for group, rows in calibrations.items():
        names = dict.fromkeys(name for row in rows.values() for name in row)
        for metric in names:
            if not (orders := orders_of(metric)):
                continue
            values = {kind: row.get(metric) for kind, row in rows.items()}
            broken = [v for order in orders for v in violations(order, values)]
            report.setdefault(metric, []).extend(f"{group}: {v}" for v in broken)
    return report
