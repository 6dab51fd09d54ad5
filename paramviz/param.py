"""How an image is represented: a pytree of float parameters plus a pure map to pixels."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax


class ImageParam(NamedTuple):
    """``to_image(params)`` gives an (N, H, W, 3) batch in [0, 1]; ``params`` are never complex."""

    params: Any
    to_image: Callable[[Any], jax.Array]
