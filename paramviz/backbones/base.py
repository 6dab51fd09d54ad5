"""The :class:`Backbone` value: a Flax module plus its variables, passable straight into ``jax.jit``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
from flax import struct


@struct.dataclass
class Backbone:
    """A network ready to run: ``variables`` are pytree data, everything else is static.

    ``layer_names`` lists every tap in forward order; ``metadata`` carries what the converted file
    said (architecture, source format, source sha256, input convention, last available layer).
    """

    variables: Mapping[str, Any]
    module: nn.Module = struct.field(pytree_node=False)
    arch: str = struct.field(pytree_node=False)
    layer_names: tuple[str, ...] = struct.field(pytree_node=False)
    metadata: Mapping[str, str] = struct.field(pytree_node=False, default_factory=dict)

    def __call__(
        self,
        images: jax.Array,
        layers: Sequence[str],
        relu_redirect: jax.Array | float | None = None,
    ) -> dict[str, jax.Array]:
        """Activations of ``layers`` for NHWC RGB ``images`` in [0, 1]; nothing deeper is computed."""
        return self.module.apply(
            self.variables, images, layers=tuple(layers), relu_redirect=relu_redirect
        )
