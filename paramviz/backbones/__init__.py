"""Backbones: Flax modules whose submodule names are the layer (tap) names.

``create(arch, **options)`` builds a module, ``init`` gives random weights, ``load``/``save`` read
and write converted ``.safetensors`` files, and :func:`from_flax` / :func:`from_function` wrap a
network of your own. ``backbone(images, layers)`` returns exactly the requested activations (NHWC;
dense layers (N, C)) and computes nothing past the deepest one. The tap names of each
architecture are listed in the docstrings of :mod:`.vgg`, :mod:`.alexnet`, :mod:`.resnet`,
:mod:`.efficientnet` and :mod:`.sequential`; each of those modules registers its
:class:`Architecture` records.

Common options: ``last_layer`` (a partial network), ``mean``/``std``/``clamp`` (input convention,
applied to RGB in [0, 1]); VGG/AlexNet/ResNet: ``num_classes``, ``width`` (channel multiplier);
VGG: ``pooling="max"|"avg"``; sequential: ``spec``, ``input_size``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from paramviz.backbones import (  # noqa: F401  (they register)
    alexnet,
    efficientnet,
    resnet,
    sequential,
    vgg,
)
from paramviz.backbones.architecture import (
    Architecture,
    StylePreset,
    architectures,
    detection_order,
    get,
    register,
    style_preset,
)
from paramviz.backbones.base import (
    Backbone,
    TapNetwork,
    flatten,
    make_backbone,
    unflatten,
    variable_shapes,
)
from paramviz.backbones.foreign import from_flax, from_function
from paramviz.backbones.store import load, read_metadata, save
from paramviz.errors import UserError
from paramviz.rng import generator

__all__ = [
    "Architecture",
    "Backbone",
    "StylePreset",
    "TapNetwork",
    "architectures",
    "create",
    "detection_order",
    "from_flax",
    "from_function",
    "get",
    "init",
    "layer_names",
    "layer_shapes",
    "load",
    "read_metadata",
    "register",
    "save",
    "style_preset",
]


def create(arch: str, **options: Any) -> TapNetwork:
    """The Flax module for ``arch``; options are checked here so that mistakes fail early."""
    return get(arch).create(**options)


def init(
    arch: str, key: jax.Array, image_size: tuple[int, int] = (224, 224), **options: Any
) -> Backbone:
    """A randomly initialised backbone: He-normal kernels, zero biases, batch norm the identity.

    Drawn with NumPy from a generator seeded by ``key``: shapes come from ``jax.eval_shape``, so no
    forward pass and no PRNG kernel is compiled (that took seconds per network on CPU).
    """
    module = create(arch, **options)
    rng = generator(key)
    shapes = flatten(variable_shapes(module, image_size))
    variables = {name: _random_leaf(rng, name, shape) for name, shape in shapes.items()}
    return make_backbone(
        module, unflatten(variables), source="random initialisation", source_format="init"
    )


def _random_leaf(rng: np.random.Generator, name: str, shape: tuple[int, ...]) -> np.ndarray:
    leaf = name.rsplit("/", 1)[-1]
    if leaf == "kernel":
        fan_in = int(np.prod(shape[:-1]))
        draws = rng.standard_normal(shape)
        draws *= np.sqrt(2.0 / fan_in)  # in place: a second float64 copy doubled the time
        return draws.astype(np.float32)
    if leaf in ("scale", "var"):
        return np.ones(shape, np.float32)
    return np.zeros(shape, np.float32)


def layer_names(arch: str, **options: Any) -> tuple[str, ...]:
    """Every tap name of ``arch``, in forward order."""
    return get(arch).layer_names(**options)


def layer_shapes(
    arch: str, image_size: tuple[int, int] = (224, 224), **options: Any
) -> dict[str, tuple[int, ...]]:
    """Output shape of every tap for one image of ``image_size`` (abstract: no FLOPs)."""
    module = create(arch, **options)
    names = module.tap_names()
    images = jax.ShapeDtypeStruct((1, *image_size, 3), jnp.float32)

    def forward(x):
        return module.init_with_output(jax.random.key(0), x, layers=names)[0]

    try:
        shapes = jax.eval_shape(forward, images)
    except (TypeError, ValueError) as err:
        size = f"{image_size[0]}x{image_size[1]}"
        raise UserError(f"{arch} cannot run on {size} images: {err}") from None
    return {name: tuple(shapes[name].shape) for name in names}
