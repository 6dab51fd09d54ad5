"""Networks that only run at one input size: a linear layer on a flattened feature map.

A plain CNN such as a CIFAR network flattens its last feature map into a linear layer whose
width fixes the input size. :func:`fixed_input_size` finds that size (the module's
``input_size`` option when it has one, else the one whose flattened map has exactly as many
values as the linear layer takes), so a render can bring its batch to it and other commands can
say which size they need instead of failing inside Flax. Layers before the first flatten or
linear layer run at any size (:func:`spatial_layers`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp

from paramviz.backbones.base import AdaptiveAvgPool, Backbone, Dense, Flatten, TapNetwork
from paramviz.errors import UserError

LARGEST_SIDE = 8192  # the search for a fixed size stops here
# (module, layer before the linear one, its width) -> side: the search traces the network a dozen
# times, and every check of a render asks again.
_FOUND_SIDES: dict[tuple, int | None] = {}


def spatial_layers(module: TapNetwork) -> tuple[str, ...]:
    """The taps before the first flatten or linear layer (their outputs are feature maps); every
    tap of a wrapped network of one's own (:mod:`.foreign`), which has no step table."""
    if not hasattr(module, "steps"):
        return tuple(module.tap_names())
    names = []
    for step in module.steps():
        if isinstance(step, Dense | Flatten):
            break
        names.append(step.name)
    return tuple(names)


def fixed_input_size(backbone: Backbone, layers: Sequence[str]) -> tuple[int, int] | None:
    """The ``(height, width)`` that reaching ``layers`` needs, or ``None`` for any size."""
    module = backbone.module
    if not hasattr(module, "steps"):
        return None  # a network of one's own runs at the sizes it says
    steps = module.steps()[: module.check_layers(layers) + 1]
    dense_at = next((i for i, step in enumerate(steps) if isinstance(step, Dense)), None)
    if dense_at is None or any(isinstance(s, AdaptiveAvgPool) for s in steps[:dense_at]):
        return None
    if getattr(module, "input_size", None):
        return module.probe_size()
    dense = steps[dense_at]
    wanted = backbone.variables["params"][dense.name]["kernel"].shape[0]
    before = steps[dense_at - 1].name if dense_at else None
    search = functools.partial(_side_with, lambda s: _flat_values(backbone, before, s), wanted)
    key = (module, before, wanted)
    try:
        side = _FOUND_SIDES[key]
    except KeyError:
        side = _FOUND_SIDES[key] = search()
    except TypeError:  # a module that cannot be hashed: search every time
        side = search()
    if side is None:
        raise UserError(
            f"{dense.name} of {backbone.arch} takes {wanted} values, and no square input size up "
            f"to {LARGEST_SIDE} flattens to that many: the weights do not fit this network"
        )
    return side, side


def check_input_size(backbone: Backbone, layers: Sequence[str], image_hw: tuple[int, int]) -> None:
    """``UserError`` naming the size ``layers`` need when ``image_hw`` is another one."""
    needed = fixed_input_size(backbone, layers)
    if needed is not None and tuple(image_hw) != needed:
        early = ", ".join(spatial_layers(backbone.module)) or "none"
        raise UserError(
            f"{backbone.arch} reaches {', '.join(layers)} through a linear layer on its "
            f"flattened feature map, so it runs only on {needed[0]}x{needed[1]} images, not "
            f"{image_hw[0]}x{image_hw[1]}; use {needed[0]}x{needed[1]} pictures or layers before "
            f"the flatten ({early})"
        )


def _flat_values(backbone: Backbone, layer: str | None, side: int) -> int:
    """How many values per image ``layer`` has for a ``side`` x ``side`` input (0: too small)."""
    if layer is None:
        return side * side * 3
    images = jax.ShapeDtypeStruct((1, side, side, 3), jnp.float32)
    try:
        shape = jax.eval_shape(lambda x: backbone(x, (layer,)), images)[layer].shape
    except (UserError, TypeError, ValueError):
        return 0
    return math.prod(shape[1:])


def _side_with(values, wanted: int) -> int | None:
    """The smallest side whose ``values(side)`` is ``wanted`` (``values`` grows with the side)."""
    low, high = 1, LARGEST_SIDE
    while low < high:
        middle = (low + high) // 2
        if values(middle) < wanted:
            low = middle + 1
        else:
            high = middle
    return low if values(low) == wanted else None
