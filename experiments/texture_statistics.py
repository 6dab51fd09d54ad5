"""A judge without learned weights: Portilla & Simoncelli's texture statistics (plenoptic).

Portilla & Simoncelli (IJCV 2000) describe a texture by statistics of a steerable pyramid:
pixel marginals, auto-correlations of the coefficients and of their magnitudes, and correlations
across orientations and scales. Two pictures with the same statistics look like the same texture
to people. No network is involved, so the judge cannot share a compared network's blind spots.
``plenoptic`` (the Simoncelli lab's PyTorch library, an optional dependency: ``pip install
plenoptic``) computes them; without it :func:`available` is False and the distances are NaN.

Distance: statistics are computed per RGB channel (the model is greyscale; colour enters through
each channel's marginals and structure) and grouped as plenoptic groups them (``pixel_statistics``,
``auto_correlation_magnitude``, ...). Per group ``g`` and channel, ``d_g = ||s_g(x) - s_g(t)|| /
(||s_g(x)|| + ||s_g(t)||)`` -- symmetric and in [0, 1], so groups of very different scales weigh
the same; the distance is the mean over groups and channels. 0 = the same statistics.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

MAX_SCALES = 4  # Portilla & Simoncelli's default pyramid depth
MIN_COARSEST = 8  # px: the coarsest scale must still hold the 7x7 auto-correlation window


def available() -> bool:
    """Whether plenoptic (and torch) can be imported."""
    try:
        import plenoptic  # noqa: F401
    except ImportError:
        return False
    return True


def pyramid_scales(height: int, width: int) -> int:
    """The deepest pyramid (at most 4 scales) that halves both sides evenly down to 8 px."""
    scales = 0
    while (
        scales < MAX_SCALES
        and height % 2 ** (scales + 1) == 0
        and width % 2 ** (scales + 1) == 0
        and min(height, width) // 2 ** (scales + 1) >= MIN_COARSEST
    ):
        scales += 1
    return scales


@functools.lru_cache(maxsize=8)
def _model(height: int, width: int):
    import plenoptic

    return plenoptic.models.PortillaSimoncelli(
        (height, width), n_scales=pyramid_scales(height, width)
    )


def statistics(images: Any) -> list[dict[str, np.ndarray]]:
    """Per image, ``{group: (3, k) array}`` of non-redundant statistics, one row per channel."""
    import torch

    batch = np.asarray(images, np.float64)
    batch = batch[None] if batch.ndim == 3 else batch
    n, height, width, _ = batch.shape
    model = _model(height, width)
    planes = torch.as_tensor(np.moveaxis(batch, -1, 1).reshape(n * 3, 1, height, width))
    with torch.no_grad():
        groups = model.convert_to_dict(model(planes.float()))
    per_image = []
    for index in range(n):
        rows = slice(3 * index, 3 * index + 3)
        per_image.append(
            {
                name: _finite(value[rows].reshape(3, -1).double().numpy())
                for name, value in groups.items()
            }
        )
    return per_image


def _finite(rows: np.ndarray) -> np.ndarray:
    """The statistics plenoptic marks redundant are NaN: keep the others (the same for every
    channel)."""
    return rows[:, np.all(np.isfinite(rows), axis=0)]


def _group_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per channel ``||a - b|| / (||a|| + ||b||)``; 0 where both are 0."""
    scale = np.linalg.norm(a, axis=1) + np.linalg.norm(b, axis=1)
    gap = np.linalg.norm(a - b, axis=1)
    return np.where(scale > 0, gap / np.where(scale > 0, scale, 1.0), 0.0)


def _target_statistics(style_image: np.ndarray) -> dict[str, np.ndarray]:
    """The style picture's statistics, computed once for all the pictures judged against it."""
    return _statistics_of(style_image.dtype.str, style_image.shape, style_image.tobytes())


@functools.lru_cache(maxsize=16)
def _statistics_of(dtype: str, shape: tuple[int, ...], data: bytes) -> dict[str, np.ndarray]:
    return statistics(np.frombuffer(data, dtype).reshape(shape))[0]


def style_distance(images: Any, style_image: Any) -> float | np.ndarray:
    """Mean over statistic groups and channels of the symmetric relative distance to the style.

    A single image gives a float, a batch ``(N, H, W, 3)`` an ``(N,)`` array; NaN without
    plenoptic or for pictures too small for a 1-scale pyramid.
    """
    array = np.asarray(images)
    single = array.ndim == 3
    count = 1 if single else len(array)
    if not available() or pyramid_scales(*array.shape[-3:-1]) < 1:
        return math.nan if single else np.full(count, math.nan)
    target = _target_statistics(np.ascontiguousarray(style_image))
    values = np.array(
        [
            np.mean([np.mean(_group_distance(stats[name], target[name])) for name in target])
            for stats in statistics(array)
        ]
    )
    return float(values[0]) if single else values
