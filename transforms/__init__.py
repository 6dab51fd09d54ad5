"""Differentiable, jit-compatible image transforms (the priors); depends on jax only.

A :data:`Transform` is a pure function ``(key, images) -> images`` on NHWC batches, following
Lucid's ``lucid/optvis/transform.py``. Random transforms draw once for the whole batch (as Lucid)
unless built with ``independent=True``. Output shapes depend only on input shapes.
"""

from paramviz.transforms._core import (
    Transform,
    compose,
    identity,
    jitter,
    pad,
    random_rotate,
    random_scale,
    resize_to,
    translate,
)
from paramviz.transforms._presets import (
    PRESETS,
    STANDARD_ANGLES,
    STANDARD_SCALES,
    mild,
    none,
    preset,
    standard,
)
from paramviz.transforms._warp import affine_warp, scale_warp

__all__ = [
    "PRESETS",
    "STANDARD_ANGLES",
    "STANDARD_SCALES",
    "Transform",
    "affine_warp",
    "compose",
    "identity",
    "jitter",
    "mild",
    "none",
    "pad",
    "preset",
    "random_rotate",
    "random_scale",
    "resize_to",
    "scale_warp",
    "standard",
    "translate",
]
