"""The input pictures: scikit-image's bundled photos and textures (nothing is downloaded)."""

from __future__ import annotations

import numpy as np

from paramviz.errors import UserError

CONTENT_STYLE_PAIRS: tuple[tuple[str, str], ...] = (
    ("chelsea", "immunohistochemistry"),
    ("astronaut", "hubble_deep_field"),
    ("coffee", "gravel"),
)
"""scikit-image pictures (bundled, no download): a cat, a portrait, a cup; stained tissue, a
deep-field sky, gravel."""


def load_picture(name: str, size: int) -> np.ndarray:
    """scikit-image's picture ``name``: RGB in [0, 1], centre square, resized to ``size`` px."""
    import skimage.data
    from PIL import Image

    try:
        pixels = np.asarray(getattr(skimage.data, name)())
    except (AttributeError, OSError, ValueError) as err:
        raise UserError(f"scikit-image has no bundled picture {name!r} ({err})") from None
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[..., None], 3, axis=-1)
    pixels = pixels[..., :3]
    if pixels.dtype == bool:
        pixels = pixels.astype(np.uint8) * 255
    side = min(pixels.shape[:2])
    top, left = (pixels.shape[0] - side) // 2, (pixels.shape[1] - side) // 2
    square = Image.fromarray(np.asarray(pixels[top : top + side, left : left + side], np.uint8))
    resized = square.resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(resized, np.float32) / 255.0
