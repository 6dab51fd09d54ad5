"""The architecture record: everything paramviz knows about one kind of network, in one place.

An :class:`Architecture` names a builder (a :class:`~paramviz.backbones.base.TapNetwork`
factory) and declares what the rest of paramviz would otherwise keep in tables of its own: the
style-transfer layers, whether the network offers Gatys' average-pool swap, whether ``paramviz
train`` can train it, and where it stands when ``weights convert`` guesses an architecture from a
checkpoint's keys. Layer names and the PyTorch key mapping come from the builder's step table.

Built-in architectures register themselves when :mod:`paramviz.backbones` is imported; a new one
is one module that calls :func:`register` (see DESIGN.md, "Where does X go").
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Callable, Mapping
from typing import Any

from paramviz.backbones.base import Backbone, TapNetwork
from paramviz.backbones.input_size import spatial_layers
from paramviz.errors import UserError


@dataclasses.dataclass(frozen=True)
class StylePreset:
    """A published style-transfer recipe as data: style layers, content layers, pooling."""

    name: str
    style_layers: tuple[str, ...]
    content_layers: tuple[str, ...]
    style_layer_weights: tuple[float, ...] | None = None  # None: equal weights
    pooling: str | None = None  # "avg": the recipe swaps a VGG's max pools (Gatys et al.)

    def layer_weights(self) -> dict[str, float] | None:
        """``style_layer_weights`` keyed by layer, for :func:`paramviz.objectives.style`."""
        if self.style_layer_weights is None:
            return None
        return dict(zip(self.style_layers, self.style_layer_weights, strict=True))


@dataclasses.dataclass(frozen=True)
class Architecture:
    """One kind of network and what it declares about itself.

    ``build(**options)`` makes the module. ``style`` is its style-transfer preset (``None``: the
    network's ReLU layers). ``pooling``: it takes ``pooling="max"|"avg"``. ``trainable``:
    ``paramviz train`` may train it (it then takes ``width`` and ``num_classes``).
    ``detect_priority``: the order in which ``weights convert`` tries it on a checkpoint of
    unknown architecture (lower first; ``None``: never guessed, e.g. it needs a spec).
    """

    name: str
    build: Callable[..., TapNetwork]
    style: StylePreset | None = None
    pooling: bool = False
    trainable: bool = False
    detect_priority: int | None = None

    def option_defaults(self) -> dict[str, Any]:
        """Every option ``build`` takes, with its default (the module's dataclass fields)."""
        signature = inspect.signature(self.build)
        return {
            name: parameter.default
            for name, parameter in signature.parameters.items()
            if name not in ("parent", "name", "variant")
        }

    def create(self, **options: Any) -> TapNetwork:
        """The module for ``options``, each checked by name and type so mistakes fail early."""
        options = {key: tuple(v) if isinstance(v, list) else v for key, v in options.items()}
        self._check_options(options)
        module = self.build(**options)
        module.steps()  # validates the spec, variant and last_layer
        return module

    def _check_options(self, options: Mapping[str, Any]) -> None:
        defaults = self.option_defaults()
        if "pooling" in options and not self.pooling:
            with_pooling = [arch.name for arch in architectures() if arch.pooling]
            raise UserError(
                f"pooling is an option of VGG-style networks ({', '.join(with_pooling)}), "
                f"not of {self.name}"
            )
        for key, value in options.items():
            if key not in defaults:
                raise UserError(
                    f"unknown option {key!r} for {self.name}; its options: {', '.join(defaults)}"
                )
            if not _fits(value, defaults[key]):
                raise UserError(
                    f"option {key}={value!r} of {self.name} should be "
                    f"{_kind(defaults[key])}, like its default {defaults[key]!r}"
                )
            _check_numbers(self.name, key, value)
        check_input_convention(self.name, options.get("mean"), options.get("std"))

    def layer_names(self, **options: Any) -> tuple[str, ...]:
        """Every tap name, in forward order."""
        return self.create(**options).tap_names()


def _fits(value: Any, default: Any) -> bool:
    """Whether an option value has its default's kind (an int where a float is expected is fine)."""
    if default is None or default is inspect.Parameter.empty:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, int | float) and not isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, type(default))


def _check_numbers(arch: str, key: str, value: Any) -> None:
    """Numbers in options (widths, class counts, sizes) are finite and positive; ``mean`` may
    be zero or negative."""
    for number in value if isinstance(value, tuple) else (value,):
        if isinstance(number, bool) or not isinstance(number, int | float):
            continue
        if not math.isfinite(number) or (key != "mean" and number <= 0):
            wanted = "finite" if key == "mean" else "finite and above 0"
            raise UserError(f"option {key}={value!r} of {arch} should be {wanted}")


def check_input_convention(arch: str, mean: Any, std: Any) -> None:
    """An input convention is one mean and one std per RGB channel (:func:`_check_numbers`
    keeps every std above 0)."""
    for key, value in (("mean", mean), ("std", std)):
        if value is not None and len(value) != 3:
            raise UserError(
                f"the input {key} of {arch} should be three numbers (R, G, B), got {list(value)}"
            )


def _kind(default: Any) -> str:
    return {bool: "true or false", float: "a number", int: "a whole number"}.get(
        type(default), f"a {type(default).__name__}"
    )


_REGISTRY: dict[str, Architecture] = {}


def register(architecture: Architecture, *, replace: bool = False) -> Architecture:
    """Make ``architecture`` known to every command (``layers``, ``convert``, ``visualize``...)."""
    if architecture.name in _REGISTRY and not replace:
        raise ValueError(f"architecture {architecture.name!r} is already registered")
    _REGISTRY[architecture.name] = architecture
    return architecture


def get(name: str) -> Architecture:
    """The architecture called ``name``; ``UserError`` listing the known ones otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UserError(f"unknown architecture {name!r}; known: {', '.join(_REGISTRY)}") from None


def architectures() -> tuple[Architecture, ...]:
    """Every registered architecture, in registration order."""
    return tuple(_REGISTRY.values())


def detection_order() -> tuple[Architecture, ...]:
    """The architectures ``weights convert`` may guess, most likely first."""
    candidates = [arch for arch in _REGISTRY.values() if arch.detect_priority is not None]
    return tuple(sorted(candidates, key=lambda arch: arch.detect_priority))


def style_preset(backbone: Backbone) -> tuple[list[str], list[str]]:
    """``(style layers, content layers)`` of a backbone: its architecture's preset, restricted to
    the layers a partial network has (content falls back to the last style layer); networks
    without a preset use their ReLU layers before any flatten (those run at every size), the
    last of them for content."""
    available = set(backbone.layer_names)
    preset = _REGISTRY[backbone.arch].style if backbone.arch in _REGISTRY else None
    if preset is None:
        relus = [name for name in spatial_layers(backbone.module) if "relu" in name]
        if not relus:
            raise UserError(
                f"{backbone.arch} has no style preset and no ReLU layers before a flatten: pass "
                f"--style-layers and --content-layers (layers: {', '.join(backbone.layer_names)})"
            )
        return relus, relus[-1:]
    style = [layer for layer in preset.style_layers if layer in available]
    content = [layer for layer in preset.content_layers if layer in available]
    return style, content or style[-1:]
