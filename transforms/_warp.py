"""One bilinear affine sampler, shared by :func:`random_scale` and :func:`random_rotate`.

A gather over the flattened canvas (four ``jnp.take`` calls for the whole batch and all channels)
rather than ``map_coordinates`` per channel; ``dm_pix`` would add a dependency for the same thing.
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp

Fill = Literal["constant", "edge", "reflect"]
FILLS: tuple[str, ...] = ("constant", "edge", "reflect")


def _reflect(coordinate: jax.Array, size: int) -> jax.Array:
    """Fold a coordinate into [0, size-1], mirroring about the edge pixels (``jnp.pad`` reflect)."""
    if size == 1:
        return jnp.zeros_like(coordinate)
    period = 2.0 * (size - 1)
    folded = jnp.mod(coordinate, period)
    return jnp.where(folded > size - 1, period - folded, folded)


def affine_warp(
    images: jax.Array, matrix: jax.Array, *, fill: Fill = "constant", value: float = 0.5
) -> jax.Array:
    """Bilinearly sample ``images`` (N, H, W, C) at ``c + matrix @ (p - c)`` for each pixel ``p``.

    ``c`` is the canvas centre and ``matrix`` a 2×2 map of (row, column) offsets from output to
    input, so the canvas size never changes (static shapes under jit). Samples outside the canvas
    take ``value`` (``fill="constant"``), the nearest edge pixel (``"edge"``) or a mirror image
    (``"reflect"``).
    """
    if fill not in FILLS:
        raise ValueError(f"unknown fill {fill!r}; choose one of: {', '.join(FILLS)}")
    n, h, w, c = images.shape
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    dy, dx = jnp.meshgrid(
        jnp.arange(h, dtype=jnp.float32) - cy, jnp.arange(w, dtype=jnp.float32) - cx, indexing="ij"
    )
    src_y = cy + matrix[0, 0] * dy + matrix[0, 1] * dx
    src_x = cx + matrix[1, 0] * dy + matrix[1, 1] * dx
    if fill == "reflect":
        src_y, src_x = _reflect(src_y, h), _reflect(src_x, w)
    y0, x0 = jnp.floor(src_y), jnp.floor(src_x)
    wy, wx = (src_y - y0)[..., None], (src_x - x0)[..., None]
    y0, x0 = y0.astype(jnp.int32), x0.astype(jnp.int32)
    flat = images.reshape(n, h * w, c)

    def corner(y: jax.Array, x: jax.Array) -> jax.Array:
        index = jnp.clip(y, 0, h - 1) * w + jnp.clip(x, 0, w - 1)
        pixels = jnp.take(flat, index.reshape(-1), axis=1).reshape(n, h, w, c)
        if fill == "constant":
            inside = (y >= 0) & (y < h) & (x >= 0) & (x < w)
            pixels = jnp.where(inside[..., None], pixels, jnp.asarray(value, images.dtype))
        return pixels

    top = corner(y0, x0) * (1.0 - wx) + corner(y0, x0 + 1) * wx
    bottom = corner(y0 + 1, x0) * (1.0 - wx) + corner(y0 + 1, x0 + 1) * wx
    return top * (1.0 - wy) + bottom * wy
