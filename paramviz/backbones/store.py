"""Converted weights as ``.safetensors`` (see DESIGN.md, "Converted weights").

Tensor keys are the flattened Flax variables joined with ``/``; ``__metadata__`` holds strings
(JSON where structured) saying how to rebuild the module. Reading never needs torch.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from paramviz.backbones.architecture import get
from paramviz.backbones.base import Backbone, flatten, make_backbone, shape_fits, unflatten
from paramviz.errors import UserError
from paramviz.io import atomic_path, check_finite, weights_sha256

FORMAT_VERSION = "1"
TORCH_MAGIC = (b"PK\x03\x04", b"\x80")  # zip-format and legacy (pickle) PyTorch files
_REQUIRED = ("paramviz_format", "arch", "arch_options", "input_convention")
_DEFAULTS = {"source_format": "", "source_sha256": "", "source": ""}
FILE_KEYS = ("weights_file", "weights_sha256")
"""Metadata :func:`load` adds about the file it read (not stored: a saved copy is another file)."""


def save(path: str | os.PathLike, backbone: Backbone, **metadata: Any) -> Path:
    """Write ``backbone`` atomically; ``metadata`` (e.g. ``source``) overrides what it carries."""
    from safetensors import SafetensorError
    from safetensors.numpy import save_file

    module = backbone.module
    carried = {key: value for key, value in backbone.metadata.items() if key not in FILE_KEYS}
    info = {
        **_DEFAULTS,
        **carried,
        **{key: str(value) for key, value in metadata.items()},
        "paramviz_format": FORMAT_VERSION,
        "arch": module.arch_name(),
        "arch_options": json.dumps(module.options(), sort_keys=True),
        "input_convention": json.dumps(module.input_convention(), sort_keys=True),
        "last_layer": backbone.layer_names[-1],
    }
    tensors = {
        key: np.ascontiguousarray(np.asarray(value, dtype=np.float32))
        for key, value in flatten(backbone.variables).items()
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        try:
            save_file(tensors, str(tmp), metadata=info)
        except SafetensorError as err:  # its I/O errors (a full disk) are not OSErrors
            code = re.search(r"os error (\d+)", str(err))
            if code is None:
                raise OSError(str(err)) from None
            raise OSError(int(code.group(1)), os.strerror(int(code.group(1)))) from None
    return path


def load(path: str | os.PathLike) -> Backbone:
    """Read a converted file; ``UserError`` if it is missing, corrupt or describes another net.

    The backbone's metadata also says which file it came from and that file's sha256
    (:data:`FILE_KEYS`), so every picture's sidecar names the exact weights used.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"weights file not found: {path}")
    info, tensors = _read(path)
    missing = [key for key in _REQUIRED if key not in info]
    if missing:
        raise UserError(f"{path} is not a paramviz weights file (metadata lacks {missing})")
    if info["paramviz_format"] != FORMAT_VERSION:
        raise UserError(
            f"{path} has paramviz_format {info['paramviz_format']!r}; this version reads "
            f"{FORMAT_VERSION!r} (convert the checkpoint again)"
        )
    options = {**_json(info, "arch_options", path), **_convention(info, path)}
    try:
        module = get(info["arch"]).create(**options)
    except UserError as err:
        raise UserError(f"{path} describes a network that cannot be built: {err}") from None
    _check_tensors(module, tensors, path)
    check_finite(tensors, path)
    file = {"weights_file": str(path.resolve()), "weights_sha256": weights_sha256(path)}
    return make_backbone(module, unflatten(tensors), **info, **file)


def _read(path: Path) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    with open_safetensors(path) as handle:
        return handle.metadata() or {}, {key: handle.get_tensor(key) for key in handle.keys()}


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The ``__metadata__`` of a ``.safetensors`` file, without reading its tensors."""
    with open_safetensors(Path(path)) as handle:
        return dict(handle.metadata() or {})


@contextlib.contextmanager
def open_safetensors(path: str | os.PathLike) -> Iterator[Any]:
    """``safe_open`` with one clear error for anything that is not a readable safetensors file."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as handle:
            yield handle
    except Exception as err:  # safetensors raises its own, OSError or ValueError
        raise UserError(f"cannot read {path}: {_not_safetensors(Path(path), err)}") from None


def _not_safetensors(path: Path, err: Exception) -> str:
    """Why ``path`` is not a converted file, naming a PyTorch checkpoint for what it is."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
    except OSError:
        head = b""
    if head.startswith(TORCH_MAGIC):
        return (
            "it is a PyTorch checkpoint, not a converted .safetensors file; convert it with "
            f"`paramviz weights convert {path} -o OUT.safetensors`"
        )
    return f"not a valid .safetensors file ({err})"


def _json(info: dict[str, str], key: str, path: Path) -> dict[str, Any]:
    try:
        value = json.loads(info[key])
    except json.JSONDecodeError as err:
        raise UserError(f"{path}: metadata {key!r} is not valid JSON ({err})") from None
    if not isinstance(value, dict):
        raise UserError(f"{path}: metadata {key!r} should be a JSON object")
    return value


def _convention(info: dict[str, str], path: Path) -> dict[str, Any]:
    convention = _json(info, "input_convention", path)
    return {key: convention[key] for key in ("mean", "std", "clamp") if key in convention}


def _check_tensors(module, tensors: dict[str, np.ndarray], path: Path) -> None:
    expected = module.expected_shapes()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong = [
        f"{key}: {tensors[key].shape} (expected {expected[key]})"
        for key in sorted(set(expected) & set(tensors))
        if not shape_fits(expected[key], tensors[key].shape)
    ]
    if missing or unexpected or wrong:
        raise UserError(
            f"{path} does not match its own description ({module.arch_name()}):"
            + describe_problems(missing=missing, unexpected=unexpected, mismatched=wrong)
        )


def describe_problems(limit: int = 8, **problems: list[str]) -> str:
    """Readable lists of what is wrong, each truncated after ``limit`` entries."""
    lines = []
    for kind, items in problems.items():
        if not items:
            continue
        shown = ", ".join(items[:limit])
        more = f", ... and {len(items) - limit} more" if len(items) > limit else ""
        lines.append(f"\n  {kind.replace('_', ' ')} ({len(items)}): {shown}{more}")
    return "".join(lines)
