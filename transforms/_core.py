"""The transforms themselves: small pure functions ``(key, images) -> images``.

Each mirrors one entry of Lucid's ``lucid/optvis/transform.py`` (or Lucent's
``lucent/optvis/transform.py`` for :func:`translate`), with one difference forced by ``jax.jit``:
output shapes depend only on input shapes, never on the random draw.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Literal, get_args

import jax
import jax.numpy as jnp

from paramviz.transforms._warp import Fill, affine_warp, scale_warp

Transform = Callable[[jax.Array, jax.Array], jax.Array]
"""``transform(key, images)``: NHWC float images in, NHWC images out; pure and differentiable."""

PadMode = Literal["constant", "reflect", "symmetric", "edge"]


def identity(key: jax.Array, images: jax.Array) -> jax.Array:
    """Return ``images`` unchanged (the ``none`` preset)."""
    del key
    return images


def _independent(transform: Transform) -> Transform:
    """Draw ``transform``'s randomness separately for every image of the batch (vmap)."""

    def per_image(key: jax.Array, images: jax.Array) -> jax.Array:
        keys = jax.random.split(key, images.shape[0])
        return jax.vmap(lambda k, one: transform(k, one[None])[0])(keys, images)

    return per_image


def _draw_below(key: jax.Array, count: int, shape: tuple[int, ...] = ()) -> jax.Array:
    """Integers uniform in ``[0, count)`` from one hash of the key (``bits % count``).

    ``jax.random.randint`` hashes three times (a split and two words, for exact uniformity), and
    XLA:CPU compiles every hash as a loop of its own: three per draw lengthened every render's
    compile. The modulo's bias is below ``count / 2**32``.
    """
    return (jax.random.bits(key, shape, jnp.uint32) % jnp.uint32(count)).astype(jnp.int32)


def _choose(key: jax.Array, values: Sequence[float]) -> jax.Array:
    """One of ``values``, uniformly (Lucid's ``_rand_select``; repeats weight a value)."""
    if not values:
        raise ValueError("need at least one value to choose from")
    table = jnp.asarray(values, dtype=jnp.float32)
    return table[_draw_below(key, len(values))]


def pad(width: int, mode: PadMode = "reflect", value: float = 0.5) -> Transform:
    """Pad every side by ``width`` pixels (Lucid's ``pad``; its default mode is also reflect).

    Gives the later crops and rotations room so the image's own border moves around too.
    ``value`` is the grey used by ``mode="constant"`` (Lucid's ``standard_transforms`` use 0.5).
    """
    modes = get_args(PadMode)
    if mode not in modes:
        raise ValueError(f"unknown pad mode {mode!r}; choose one of: {', '.join(modes)}")

    def padded(key: jax.Array, images: jax.Array) -> jax.Array:
        del key
        widths = ((0, 0), (width, width), (width, width), (0, 0))
        if mode == "constant":
            return jnp.pad(images, widths, mode="constant", constant_values=value)
        return jnp.pad(images, widths, mode=mode)

    return padded


def jitter(d: int, *, independent: bool = False) -> Transform:
    """Lucid's ``jitter``: a random (H-d, W-d) crop, offsets uniform in [0, d] (``tf.random_crop``).

    The image shrinks by ``d``; one offset for the whole batch unless ``independent``.
    """
    if d < 0:
        raise ValueError(f"jitter needs d >= 0, got {d}")

    def cropped(key: jax.Array, images: jax.Array) -> jax.Array:
        n, h, w, c = images.shape
        oy, ox = _draw_below(key, d + 1, (2,))
        return jax.lax.dynamic_slice(images, (0, oy, ox, 0), (n, h - d, w - d, c))

    return _independent(cropped) if independent else cropped


def translate(d: int, *, independent: bool = False) -> Transform:
    """Lucent's ``jitter``: shift content by (dy, dx) in [0, d) pixels, zero fill, same size."""
    if d < 1:
        raise ValueError(f"translate needs d >= 1, got {d}")

    def shifted(key: jax.Array, images: jax.Array) -> jax.Array:
        n, h, w, c = images.shape
        dy, dx = _draw_below(key, d, (2,))
        framed = jnp.pad(images, ((0, 0), (d, 0), (d, 0), (0, 0)))
        return jax.lax.dynamic_slice(framed, (0, d - dy, d - dx, 0), (n, h, w, c))

    return _independent(shifted) if independent else shifted


def random_scale(
    scales: Sequence[float],
    *,
    fill: Fill = "constant",
    value: float = 0.5,
    independent: bool = False,
) -> Transform:
    """Zoom by a factor drawn from ``scales`` about the centre, keeping the canvas size.

    Lucid resizes the canvas to ``int(s*H)`` (``tf.image.resize_bilinear``): a shape that depends on
    the draw, impossible under ``jax.jit``. Here ``s > 1`` enlarges the content and crops the
    overflow, ``s < 1`` shrinks it and fills the border (``fill``/``value``; the default 0.5 grey is
    the colour of ``standard``'s padding). Content is magnified by exactly ``s`` as in Lucid; only
    the canvas edge differs.
    """

    def scaled(key: jax.Array, images: jax.Array) -> jax.Array:
        factor = _choose(key, scales)
        return scale_warp(images, factor, fill=fill, value=value)

    return _independent(scaled) if independent else scaled


def random_rotate(
    angles: Sequence[float],
    units: Literal["degrees", "radians"] = "degrees",
    *,
    fill: Fill = "constant",
    value: float = 0.5,
    independent: bool = False,
) -> Transform:
    """Rotate counter-clockwise about the centre by an angle drawn from ``angles``, bilinearly.

    Lucid (``tfa.image.rotate``) samples nearest-neighbour, fills with black and converts degrees
    with 3.14 instead of π (0.05 % short); here bilinear sampling, exact π, ``fill``/``value``.
    """
    if units not in ("degrees", "radians"):
        raise ValueError(f"units must be 'degrees' or 'radians', got {units!r}")
    to_radians = math.pi / 180.0 if units == "degrees" else 1.0

    def rotated(key: jax.Array, images: jax.Array) -> jax.Array:
        angle = _choose(key, angles) * to_radians
        cos, sin = jnp.cos(angle), jnp.sin(angle)
        # Output offset (dy, dx) reads input offset (cos dy + sin dx, -sin dy + cos dx).
        matrix = jnp.stack([jnp.stack([cos, sin]), jnp.stack([-sin, cos])])
        return affine_warp(images, matrix, fill=fill, value=value)

    return _independent(rotated) if independent else rotated


def resize_to(height: int, width: int) -> Transform:
    """Resize the batch bilinearly (antialiased when shrinking) to ``height`` x ``width``.

    Appended after the random transforms, it keeps a network that only runs at one input size
    (a linear layer on a flattened feature map) fed at that size, whatever the image's size and
    whatever padding the transforms add.
    """
    if height < 1 or width < 1:
        raise ValueError(f"resize_to needs a positive size, got {height}x{width}")

    def resized(key: jax.Array, images: jax.Array) -> jax.Array:
        del key
        n, _, _, c = images.shape
        return jax.image.resize(images, (n, height, width, c), method="linear")

    return resized


def compose(*transforms: Transform) -> Transform:
    """Apply ``transforms`` in order, each with its own key split from the one given."""

    def composed(key: jax.Array, images: jax.Array) -> jax.Array:
        if not transforms:
            return images
        keys = jax.random.split(key, len(transforms))
        for transform, subkey in zip(transforms, keys, strict=True):
            images = transform(subkey, images)
        return images

    return composed
