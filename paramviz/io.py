"""Files in and out: atomic writes, images, JSON records and file hashes.

Every file paramviz writes goes through :func:`atomic_path`, so a failed or interrupted command
never leaves a half-written file that looks valid.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from paramviz.errors import UserError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual mode
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_image(path: str | os.PathLike, size: int | None = None) -> np.ndarray:
    """Read an image as float32 RGB in [0, 1], shape (H, W, 3).

    EXIF orientation is applied, greyscale is repeated to RGB, alpha is composited on white.
    ``size`` resizes so that the longer side is ``size`` pixels, keeping the aspect ratio.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise UserError(f"image not found: {path}")
    try:
        with Image.open(path) as img:
            img = ImageOps.exif_transpose(img)
            img.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise UserError(f"cannot read image {path}: {err}") from None
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    img = img.convert("RGB")
    if size is not None:
        scale = size / max(img.size)
        new = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        if new != img.size:
            img = img.resize(new, Image.Resampling.LANCZOS)
    return np.asarray(img, dtype=np.float32) / 255.0


def to_uint8(image: np.ndarray) -> np.ndarray:
    """[0, 1] float image → uint8, rounding and clipping."""
    return np.clip(np.rint(np.asarray(image, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)


def save_png(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write an (H, W, 3) image in [0, 1] as PNG, atomically."""
    import imageio.v3 as iio

    path = Path(path)
    with atomic_path(path) as tmp:
        iio.imwrite(tmp, to_uint8(image), extension=".png")
    return path


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    return sha256_of(path).hexdigest()


def sha256_of(path: str | os.PathLike) -> Any:
    """A sha256 hasher fed with the whole file (a resumed download keeps updating it)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256")


def to_json_data(value: Any, where: str = "value") -> Any:
    """``value`` as plain JSON data; non-finite floats become ``None``.

    Tuples become lists, numpy scalars and arrays numbers and lists, paths strings; floats are
    written by ``str`` (the shortest text that round-trips, so float32 0.05 is 0.05). Anything
    else is a ``TypeError`` naming the entry (``where``) that cannot be written.
    """
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(str(value)) if math.isfinite(value) else None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, np.ndarray):
        return [to_json_data(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        return {str(k): to_json_data(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json_data(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise TypeError(f"{where} ({type(value).__name__}) cannot be written to JSON")


def json_text(data: Any) -> str:
    """Indented JSON of :func:`to_json_data` of ``data``, ending in a newline."""
    return json.dumps(to_json_data(data), indent=2, allow_nan=False) + "\n"


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as JSON atomically (readers never see half a file)."""
    path = Path(path)
    text = json_text(data)  # fails before anything is written
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def read_json(path: str | os.PathLike) -> Any:
    """Parse a JSON file; ``UserError`` naming it when it is missing or not JSON."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise UserError(f"cannot read {path}: {err}") from None
