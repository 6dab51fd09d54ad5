"""How much memory a render needs, worked out from shapes alone, and how much this machine has.

:func:`render_needs` runs the transforms and the network abstractly (``jax.eval_shape`` of a
``jax.vjp``) on the requested batch and size, so nothing is allocated, and adds up the arrays the
backward pass keeps (its residuals); the same pass gives the shapes of the layers read, for the
objective's index checks, so a command traces its network once less. Peak use is taken as
:data:`RESIDUAL_FACTOR` times the residuals (the gradients flowing back and XLA's temporaries
come on top: measured peak growth on CPU was 0.6 times the residuals for VGG-19 and 1.6-2.1
times for ResNet-18 at 224 px, batches of 16 and 64), plus :data:`IMAGE_COPIES` copies of the
image batch (its parameters, their gradient, Adam's two moments, the last finite parameters, the
evaluated image), the flipped kernels a render makes for its input gradients, the snapshots kept
for ``save_every`` and the loss history. :func:`check_fits` refuses a request that needs more
than the machine has available before any array is built, unless forced.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp

from paramviz import rng
from paramviz.backbones.base import Backbone
from paramviz.errors import UserError
from paramviz.io import format_bytes

RESIDUAL_FACTOR = 2.0
IMAGE_COPIES = 8
FLOAT_BYTES = 4
_CGROUP = Path("/sys/fs/cgroup")


class RenderNeeds(NamedTuple):
    """What one abstract pass of a render says: the bytes it needs beyond the weights, and the
    shape of every layer it reads (on the transformed batch)."""

    bytes: int
    shapes: dict[str, tuple[int, ...]]


def render_needs(
    backbone: Backbone,
    layers: Sequence[str],
    batch: int,
    image_hw: tuple[int, int],
    transform: Callable[[jax.Array, jax.Array], jax.Array],
    *,
    steps: int = 0,
    snapshots: int = 0,
) -> RenderNeeds:
    """Memory and layer shapes of a render of ``batch`` images of ``image_hw`` through
    ``transform`` and ``backbone`` (up to ``layers``), see the module docstring; ``steps``
    losses and ``snapshots`` images are kept too."""
    layers = tuple(layers)

    def value(images: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
        features = backbone(transform(rng.key(0), images), layers)
        return sum(jnp.sum(feature) for feature in features.values()), features

    def pullback_and_features(images: jax.Array) -> tuple[Callable, dict[str, jax.Array]]:
        _, pullback, features = jax.vjp(value, images, has_aux=True)
        return pullback, features

    residuals, features = _abstract(pullback_and_features, backbone, batch, image_hw)
    kept = sum(_bytes(leaf) for leaf in jax.tree.leaves(residuals))
    flipped = sum(_bytes(kernel) for kernel in backbone.input_grad_sources(layers).values())
    image_bytes = batch * image_hw[0] * image_hw[1] * 3 * FLOAT_BYTES
    losses = steps * FLOAT_BYTES
    needed = RESIDUAL_FACTOR * kept + flipped + (IMAGE_COPIES + snapshots) * image_bytes + losses
    return RenderNeeds(int(needed), {name: tuple(f.shape) for name, f in features.items()})


def forward_bytes(
    backbone: Backbone, layers: Sequence[str], image_hw: tuple[int, int], saved: Sequence[str]
) -> tuple[int, int]:
    """``(memory, output)`` bytes of one forward pass of an image to ``layers``: every tap up to
    the deepest is computed, and the ``saved`` ones are copied out (and written)."""
    taps = backbone.layer_names[: backbone.module.check_layers(layers) + 1]
    shapes = _abstract(lambda x: backbone(x, taps), backbone, 1, image_hw)
    output = sum(_bytes(shapes[name]) for name in saved)
    return int(RESIDUAL_FACTOR * sum(map(_bytes, shapes.values())) + 2 * output), output


def _abstract(fn: Callable, backbone: Backbone, batch: int, image_hw: tuple[int, int]):
    """``jax.eval_shape`` of ``fn`` on an image batch; a size JAX cannot index is a UserError."""
    images = jax.ShapeDtypeStruct((batch, *image_hw, 3), jnp.float32)
    try:
        return jax.eval_shape(fn, images)
    except (OverflowError, TypeError, ValueError) as err:
        size = f"{batch} image(s) of {image_hw[0]}x{image_hw[1]}"
        raise UserError(f"cannot run {backbone.arch} on {size}: {err}") from None


def _bytes(leaf: jax.ShapeDtypeStruct) -> int:
    return math.prod(leaf.shape) * leaf.dtype.itemsize


def available_bytes() -> int | None:
    """Memory this process can still take: ``MemAvailable`` of ``/proc/meminfo`` (else
    ``os.sysconf``), capped by a cgroup limit; ``None`` when the system does not say."""
    candidates = [_meminfo_available(), _cgroup_headroom()]
    known = [value for value in candidates if value is not None]
    return min(known) if known else None


def check_fits(
    needed: int,
    what: str,
    force: bool = False,
    advice: str = "use a smaller size, fewer images, steps or snapshots",
) -> None:
    """``UserError`` when ``needed`` bytes exceed what is available (unless ``force``)."""
    available = available_bytes()
    if force or available is None or needed <= available:
        return
    raise UserError(
        f"{what} needs about {format_bytes(needed)} of memory and this machine has "
        f"{format_bytes(available)} available; {advice}, or pass --force to try anyway"
    )


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key == "MemAvailable":
                return int(value.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return None


def _cgroup_headroom() -> int | None:
    """The cgroup's memory limit less its use (v2, then v1); ``None`` without a limit."""
    for limit_file, usage_file in (
        ("memory.max", "memory.current"),
        ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes"),
    ):
        try:
            limit = (_CGROUP / limit_file).read_text().strip()
            usage = int((_CGROUP / usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit.isdigit() and int(limit) < 1 << 60:
            return max(int(limit) - usage, 0)
    return None
