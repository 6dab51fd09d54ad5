"""What ``--weights`` names: a converted file, a fetched registry entry, or random weights."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import jax

from paramviz import backbones
from paramviz.backbones import Backbone
from paramviz.errors import UserError
from weights import registry

RANDOM = "random"


def resolve_backbone(weights: str, arch: str | None = None, **overrides: Any) -> Backbone:
    """The backbone named by ``weights`` (a file, a registry name or 'random').

    ``arch`` is checked against the file (and is required for random weights); ``overrides``
    change architecture options that do not touch the weights, e.g. ``pooling="avg"``; ``None``
    values are ignored.
    """
    overrides = {key: value for key, value in overrides.items() if value is not None}
    if weights == RANDOM:
        if not arch:
            raise UserError("--weights random needs --backbone ARCH")
        return backbones.init(arch, jax.random.PRNGKey(0), **overrides)
    path = weights_path(weights)
    backbone = backbones.load(path)
    if arch and arch != backbone.arch:
        raise UserError(f"{path} holds weights for {backbone.arch!r}, not for --backbone {arch!r}")
    if overrides:
        options = {**backbone.module.options(), **overrides}
        module = backbones.create(backbone.arch, **options)
        backbone = dataclasses.replace(backbone, module=module)
    return backbone


def weights_path(weights: str) -> Path:
    """A file path as is; a name without a suffix is a registry entry that must be fetched."""
    path = Path(weights)
    if path.suffix:
        return path
    entry = registry.get(weights)  # UserError with suggestions for unknown names
    path = registry.converted_path(entry.name)
    if not path.is_file():
        raise UserError(
            f"weights {entry.name!r} are not in the cache ({path}); "
            f"run `paramviz weights fetch {entry.name}` first"
        )
    return path
