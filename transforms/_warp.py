"""The bilinear samplers behind :func:`random_scale` and :func:`random_rotate`.

:func:`affine_warp` gathers over the flattened canvas (four ``jnp.take`` calls for the whole batch
and all channels) rather than ``map_coordinates`` per channel; ``dm_pix`` would add a dependency
for the same thing. A zoom's map is diagonal, so :func:`scale_warp` samples the columns and then
the rows: gathers of whole rows instead of a gather per pixel, the same bilinear weights and fill.
Indices are clipped before every gather, so the gathers take ``mode="clip"`` and XLA adds no bounds
masking of its own.
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp

Fill = Literal["constant", "edge", "reflect"]
FILLS: tuple[str, ...] = ("constant", "edge", "reflect")
_INDEX = jnp.int32  # the flat canvas index of affine_warp


def _check_fill(fill: str) -> None:
    if fill not in FILLS:
        raise ValueError(f"unknown fill {fill!r}; choose one of: {', '.join(FILLS)}")


def _reflect(coordinate: jax.Array, size: int) -> jax.Array:
    """Fold a coordinate into [0, size-1], mirroring about the edge pixels (``jnp.pad`` reflect)."""
    if size == 1:
        return jnp.zeros_like(coordinate)
    period = 2.0 * (size - 1)
    folded = jnp.mod(coordinate, period)
    return jnp.where(folded > size - 1, period - folded, folded)


def _centred_offsets(size: int) -> jax.Array:
    return jnp.arange(size, dtype=jnp.float32) - (size - 1) / 2.0


def affine_warp(
    images: jax.Array, matrix: jax.Array, *, fill: Fill = "constant", value: float = 0.5
) -> jax.Array:
    """Bilinearly sample ``images`` (N, H, W, C) at ``c + matrix @ (p - c)`` for each pixel ``p``.

    ``c`` is the canvas centre and ``matrix`` a 2×2 map of (row, column) offsets from output to
    input, so the canvas size never changes (static shapes under jit). Samples outside the canvas
    take ``value`` (``fill="constant"``), the nearest edge pixel (``"edge"``) or a mirror image
    (``"reflect"``).
    """
    _check_fill(fill)
    n, h, w, c = images.shape
    if h * w > jnp.iinfo(_INDEX).max:  # the flat index would wrap around silently
        raise ValueError(f"a {h}x{w} canvas has more pixels than a 32-bit index reaches")
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    dy, dx = jnp.meshgrid(_centred_offsets(h), _centred_offsets(w), indexing="ij")
    src_y = cy + matrix[0, 0] * dy + matrix[0, 1] * dx
    src_x = cx + matrix[1, 0] * dy + matrix[1, 1] * dx
    if fill == "reflect":
        src_y, src_x = _reflect(src_y, h), _reflect(src_x, w)
    y0, x0 = jnp.floor(src_y), jnp.floor(src_x)
    wy, wx = (src_y - y0)[..., None], (src_x - x0)[..., None]
    y0, x0 = y0.astype(_INDEX), x0.astype(_INDEX)
    flat = images.reshape(n, h * w, c)

    def corner(y: jax.Array, x: jax.Array) -> jax.Array:
        index = jnp.clip(y, 0, h - 1) * w + jnp.clip(x, 0, w - 1)
        pixels = jnp.take(flat, index.reshape(-1), axis=1, mode="clip").reshape(n, h, w, c)
        if fill == "constant":
            inside = (y >= 0) & (y < h) & (x >= 0) & (x < w)
            pixels = jnp.where(inside[..., None], pixels, jnp.asarray(value, images.dtype))
        return pixels

    top = corner(y0, x0) * (1.0 - wx) + corner(y0, x0 + 1) * wx
    bottom = corner(y0 + 1, x0) * (1.0 - wx) + corner(y0 + 1, x0 + 1) * wx
    return top * (1.0 - wy) + bottom * wy


def scale_warp(
    images: jax.Array, factor: jax.Array | float, *, fill: Fill = "constant", value: float = 0.5
) -> jax.Array:
    """:func:`affine_warp` of the zoom ``matrix = I / factor``, sampled one axis at a time.

    The 2-D sampler's bilinear weights and fill, computed in another order: the result is the
    same up to rounding.
    """
    _check_fill(fill)
    inverse = 1.0 / jnp.asarray(factor, jnp.float32)
    fill_value = jnp.asarray(value, images.dtype)
    columns, wx = _sample_axis(images, 2, inverse, fill, fill_value)
    # Where a row lies outside, the 2-D sampler interpolates the fill between two columns.
    rows, _ = _sample_axis(columns, 1, inverse, fill, fill_value * (1.0 - wx) + fill_value * wx)
    return rows


def _sample_axis(
    images: jax.Array, axis: int, inverse: jax.Array, fill: Fill, fill_value: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Linear interpolation along ``axis`` at ``centre + inverse * offset``; also the weights."""
    size = images.shape[axis]
    source = (size - 1) / 2.0 + inverse * _centred_offsets(size)
    if fill == "reflect":
        source = _reflect(source, size)
    start = jnp.floor(source)
    shape = [1] * images.ndim
    shape[axis] = size
    weight = (source - start).reshape(shape)
    start = start.astype(jnp.int32)

    def neighbour(index: jax.Array) -> jax.Array:
        pixels = jnp.take(images, jnp.clip(index, 0, size - 1), axis=axis, mode="clip")
        if fill != "constant":
            return pixels
        return jnp.where(((index >= 0) & (index < size)).reshape(shape), pixels, fill_value)

    return neighbour(start) * (1.0 - weight) + neighbour(start + 1) * weight, weight
