"""Your own network as a backbone: any Flax module, or a plain JAX function of named activations.

:func:`from_flax` taps every submodule of a Flax module (its ``__call__`` output, named by the
submodule path joined with ``.``: ``"block1.conv2"``) and every value it ``sow``s into
``"intermediates"``; the module's own output is ``"output"``. :func:`from_function` takes
``fn(variables, images) -> {name: activation}``. Either way the result is a
:class:`~paramviz.backbones.Backbone`, so every objective, render and experiment runs on it.

Two things a registered architecture has that these do not: the whole network runs every time
(there is no step table to stop after the deepest layer), and Lucid's ReLU gradient redirection
is not applied (it lives in paramviz's own ReLU). Images arrive as NHWC RGB in [0, 1]; any
normalisation belongs inside the wrapped network.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import traverse_util

from paramviz.backbones.base import Backbone, deepest_layer, make_backbone

Activations = Callable[[Any, jax.Array], Mapping[str, jax.Array]]
OUTPUT = "output"
"""The tap name of a wrapped Flax module's own return value."""


@dataclasses.dataclass(frozen=True, eq=False)
class FunctionNetwork:
    """The module interface render and the CLI use, around ``activations(variables, images)``."""

    activations: Activations
    names: tuple[str, ...]
    arch: str = "custom"

    def apply(
        self,
        variables: Any,
        images: jax.Array,
        layers: Sequence[str] = (),
        relu_redirect: Any = None,
    ) -> dict[str, jax.Array]:
        """The requested activations (the whole network runs; ``relu_redirect`` is ignored)."""
        layers = (layers,) if isinstance(layers, str) else tuple(layers)
        self.check_layers(layers)
        if not layers:
            return {}
        computed = self.activations(variables, jnp.asarray(images, jnp.float32))
        return {layer: computed[layer] for layer in layers}

    def check_layers(self, layers: Sequence[str]) -> int:
        return deepest_layer(self.arch, self.names, layers)

    def tap_names(self) -> tuple[str, ...]:
        return self.names

    def arch_name(self) -> str:
        return self.arch

    def options(self) -> dict[str, Any]:
        return {}

    def input_convention(self) -> dict[str, Any]:
        return {"note": "NHWC RGB in [0, 1]; any normalisation is inside the wrapped network"}


def from_function(
    activations: Activations,
    variables: Any,
    layer_names: Sequence[str] | None = None,
    *,
    example_size: tuple[int, int] = (224, 224),
    name: str = "custom",
) -> Backbone:
    """A backbone from ``activations(variables, images) -> {name: NHWC or (N, C) array}``.

    ``layer_names`` (forward order) defaults to the keys the function returns, in the order it
    returns them, for one image of ``example_size`` (traced abstractly: no FLOPs).
    """
    if layer_names is None:
        layer_names = _returned_names(activations, variables, example_size)
    network = FunctionNetwork(activations, tuple(layer_names), name)
    return make_backbone(network, variables, source=name, source_format="function")


def _returned_names(
    activations: Activations, variables: Any, example_size: tuple[int, int]
) -> tuple[str, ...]:
    """The keys ``activations`` returns, in its own order (``eval_shape``'s output sorts them)."""
    names: list[str] = []

    def recording(variables: Any, images: jax.Array) -> Mapping[str, jax.Array]:
        computed = activations(variables, images)
        names.extend(computed)
        return computed

    jax.eval_shape(recording, variables, jax.ShapeDtypeStruct((1, *example_size, 3), jnp.float32))
    return tuple(names)


def from_flax(
    module: nn.Module,
    variables: Any,
    *,
    example_size: tuple[int, int] = (224, 224),
    name: str | None = None,
) -> Backbone:
    """A backbone from a Flax module and its variables; every submodule output is a layer.

    The module is called as ``module.apply(variables, images)`` on NHWC RGB in [0, 1].
    """

    def activations(variables: Any, images: jax.Array) -> dict[str, jax.Array]:
        output, state = module.apply(
            variables, images, capture_intermediates=True, mutable=["intermediates"]
        )
        flat = traverse_util.flatten_dict(state["intermediates"], sep=".")
        taps = {_tap_name(key): values[-1] for key, values in flat.items()}
        taps[OUTPUT] = output
        return taps

    arch = name or type(module).__name__
    return from_function(activations, variables, example_size=example_size, name=arch)


def _tap_name(key: str) -> str:
    """``"block1.conv.__call__"`` → ``"block1.conv"``; a sown ``"block1.features"`` stays."""
    return key.removesuffix(".__call__").removesuffix("__call__") or OUTPUT
