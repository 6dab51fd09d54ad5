"""Files in and out: atomic writes, images, JSON records and file hashes.

Every file paramviz writes goes through :func:`atomic_path`, so a failed or interrupted command
never leaves a half-written file that looks valid.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from paramviz.errors import UserError
from paramviz.vocabulary import MAX_IMAGE_PIXELS

PART_SUFFIX = ".part"
_PART_PID = re.compile(r"\.(\d+)-[^.]*\.part$")
_WRITE_CHECK = "write-check"
MAX_NAMED = 8  # names listed in one message


class WriteError(UserError, OSError):
    """A file could not be written (full disk, read-only folder): a :class:`UserError` for the
    command line, still an ``OSError`` for callers that handle those."""

    def __init__(self, target: Path | str, reason: str):
        super().__init__(f"cannot write {target}: {reason}")
        self.target, self.reason = target, reason


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    The temporary file is ``.NAME.PID-RANDOM.part``: one left by a killed process (its PID no
    longer runs) is deleted the next time ``path`` is written. A failed write (a full disk, a
    read-only folder) is a :class:`UserError` naming ``path``, and leaves ``path`` as it was.
    """
    path = Path(path)
    with _write_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_parts(path)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{path.name}.{os.getpid()}-", suffix=PART_SUFFIX, dir=path.parent
        )
        os.close(fd)
    tmp = Path(tmp)
    try:
        with _write_errors(path, tmp):
            yield tmp
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual mode
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def _write_errors(path: Path | str, temporary: Path | None = None) -> Iterator[None]:
    """An ``OSError`` while writing ``path`` (through ``temporary``) becomes one line that
    names ``path``."""
    try:
        yield
    except WriteError as err:
        if temporary is not None and err.target == temporary:  # a write into our temporary
            raise WriteError(path, err.reason) from None
        raise
    except OSError as err:
        reason = err.strerror or str(err)
        hint = " (free some space)" if err.errno in (errno.ENOSPC, errno.EDQUOT) else ""
        raise WriteError(path, reason + hint) from None


def remove_stale_parts(path: str | os.PathLike) -> list[Path]:
    """Delete the temporary files of ``path`` whose writing process no longer runs."""
    path = Path(path)
    removed = []
    for part in path.parent.glob(f".{glob_escape(path.name)}.*{PART_SUFFIX}"):
        found = _PART_PID.search(part.name)
        if found and not _running(int(found.group(1))):
            part.unlink(missing_ok=True)
            removed.append(part)
    return removed


def glob_escape(text: str) -> str:
    """``text`` with glob's special characters taken literally."""
    return re.sub(r"([*?\[])", r"[\1]", text)


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return True


def check_output(
    path: str | os.PathLike,
    suffix: str | Sequence[str],
    *,
    inputs: Iterable[str | os.PathLike | None] = (),
    needed_bytes: int = 0,
) -> Path:
    """Refuse an output before any work: a wrong suffix (one of ``suffix`` when several), a
    path that is one of ``inputs`` (links followed), or a folder that cannot be written or has
    less than ``needed_bytes`` free."""
    path = Path(path)
    suffixes = (suffix,) if isinstance(suffix, str) else tuple(suffix)
    wanted = " or ".join(", ".join(suffixes).rsplit(", ", 1))
    if path.suffix.lower() not in suffixes:
        raise UserError(f"--output must end in {wanted}: {path}")
    if path.is_dir():
        raise UserError(f"the output {path} is a folder; give a file name ending in {wanted}")
    check_not_inputs([path], inputs)
    check_writable(path.parent, needed_bytes)
    return path


def check_not_inputs(
    outputs: Iterable[str | os.PathLike], inputs: Iterable[str | os.PathLike | None]
) -> None:
    """``UserError`` if an output is one of the inputs (same resolved path or same file)."""
    sources = [Path(source) for source in inputs if source is not None]
    for output in map(Path, outputs):
        for source in sources:
            if _same_file(output, source):
                raise UserError(
                    f"the output {output} is the input {source}: writing it would destroy the "
                    "input; choose another output path"
                )


def _same_file(a: Path, b: Path) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)  # hard links
    except OSError:
        return False


def check_writable(folder: str | os.PathLike, needed_bytes: int = 0) -> Path:
    """Prove a file can be created in ``folder`` (or in its nearest existing parent, which is
    left as it is): permissions and read-only file systems, for root too. ``UserError`` if not,
    or if there are under ``needed_bytes`` free."""
    folder = Path(folder)
    existing = folder.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"cannot write in {folder}: {existing} is a file, not a folder")
    with _write_errors(f"in {folder}"):
        remove_stale_parts(existing / _WRITE_CHECK)
        fd, probe = tempfile.mkstemp(
            prefix=f".{_WRITE_CHECK}.{os.getpid()}-", suffix=PART_SUFFIX, dir=existing
        )
        os.close(fd)
        os.unlink(probe)
        free = shutil.disk_usage(existing).free
    if needed_bytes > free:
        raise UserError(
            f"{folder} has {format_bytes(free)} free and this needs about "
            f"{format_bytes(needed_bytes)}: free some space or write elsewhere"
        )
    return folder


def format_bytes(count: float) -> str:
    """``1536`` → ``"1.5 KiB"``."""
    units = ("B", "KiB", "MiB", "GiB", "TiB")
    power = 0
    while count >= 1024 and power < len(units) - 1:
        count, power = count / 1024, power + 1
    return f"{count:.0f} B" if power == 0 else f"{count:.1f} {units[power]}"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_image(
    path: str | os.PathLike, size: int | None = None, max_pixels: int = MAX_IMAGE_PIXELS
) -> np.ndarray:
    """Read an image as float32 RGB in [0, 1], shape (H, W, 3).

    EXIF orientation is applied, greyscale is repeated to RGB, alpha is composited on white, and
    every bit depth is scaled by its own maximum (16-bit greyscale by 65535). ``size`` resizes so
    that the longer side is ``size`` pixels, keeping the aspect ratio. An image (or a resize) of
    more than ``max_pixels`` pixels is refused before it is decoded (a decompression bomb).
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise UserError(f"image not found: {path}")
    try:
        with _pil_pixel_limit(Image, None), Image.open(path) as img:
            _check_pixels(path, img.size, max_pixels, None)
            deepest = _deepest_value(img)
            img = ImageOps.exif_transpose(img)
            img.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise UserError(f"cannot read image {path}: {err}") from None
    new = img.size if size is None else fitted_size(img.size, size)
    _check_pixels(path, new, max_pixels, size)
    if deepest is not None:
        return _high_depth_grey(img, new, deepest)
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    img = img.convert("RGB")
    if new != img.size:
        img = img.resize(new, Image.Resampling.LANCZOS)
    return np.asarray(img, dtype=np.float32) / 255.0


def _deepest_value(img: Any) -> float | None:
    """What white is in PIL's single-channel modes deeper than 8 bits (16-bit greyscale PNG and
    TIFF, 32-bit integers, [0, 1] floats); ``None`` for the 8-bit modes PIL converts itself.
    A PNG holds at most 16 bits, so its ``I`` mode is 16-bit data."""
    if img.mode.startswith("I;16") or (img.mode == "I" and img.format == "PNG"):
        return 65535.0
    return {"I": 2.0**31 - 1, "F": 1.0}.get(img.mode)


def _high_depth_grey(img: Any, new: tuple[int, int], white: float) -> np.ndarray:
    from PIL import Image

    grey = np.clip(np.asarray(img, dtype=np.float32) / white, 0.0, 1.0)
    if new != img.size:
        grey = np.asarray(Image.fromarray(grey, mode="F").resize(new, Image.Resampling.LANCZOS))
    return np.repeat(np.clip(grey, 0.0, 1.0)[..., None], 3, axis=-1)


def fitted_size(width_height: tuple[int, int], size: int) -> tuple[int, int]:
    """``(width, height)`` scaled so that the longer side is ``size`` (at least 1 pixel each)."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise UserError(f"an image size must be a whole number of pixels >= 1, got {size!r}")
    width, height = width_height
    scale = size / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _check_pixels(path: Path, width_height: tuple[int, int], limit: int, size: int | None) -> None:
    width, height = width_height
    pixels = width * height
    if pixels <= limit:
        return
    amount = f"{width}x{height} pixels ({pixels / 1e6:.1f} megapixels)"
    over = f"over the limit of {limit / 1e6:.1f} megapixels"
    if size is not None:
        raise UserError(f"size {size} would make image {path} {amount}, {over}; use a smaller size")
    raise UserError(
        f"image {path} is {amount}, {over} (a decompression bomb?); pass --max-pixels {pixels} "
        "to read it anyway"
    )


@contextlib.contextmanager
def _pil_pixel_limit(image_module: Any, limit: int | None) -> Iterator[None]:
    """PIL's own bomb check replaced while :func:`read_image` applies its limit (and says how
    to raise it)."""
    previous = image_module.MAX_IMAGE_PIXELS
    image_module.MAX_IMAGE_PIXELS = limit
    try:
        yield
    finally:
        image_module.MAX_IMAGE_PIXELS = previous


def check_finite(tensors: Mapping[str, np.ndarray], path: str | os.PathLike) -> None:
    """NaN or Inf weights would silently poison every render: name them instead."""
    bad = [key for key, value in tensors.items() if not np.isfinite(value).all()]
    if bad:
        shown = ", ".join(bad[:MAX_NAMED])
        more = f" and {len(bad) - MAX_NAMED} more" if len(bad) > MAX_NAMED else ""
        raise UserError(
            f"{path} has NaN or Inf values in {shown}{more}: the weights are corrupt (or their "
            "training diverged)"
        )


def to_uint8(image: np.ndarray) -> np.ndarray:
    """[0, 1] float image → uint8, rounding and clipping."""
    return np.clip(np.rint(np.asarray(image, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)


PICTURE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}
"""What a rendered picture may be written as, by its suffix."""
PICTURE_OPTIONS = {"JPEG": {"quality": 95}, "WEBP": {"lossless": True}}


def save_png(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write an (H, W, 3) image in [0, 1] as PNG, atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        write_png(tmp, image)
    return path


def write_png(path: str | os.PathLike, image: np.ndarray, suffix: str = ".png") -> None:
    """Write an (H, W, 3) image in [0, 1] to ``path`` as it is (e.g. the temporary file of an
    :func:`atomic_path` that also holds other files), as PNG or in the format ``suffix`` names
    (:data:`PICTURE_FORMATS`: JPEG at quality 95, lossless WebP)."""
    from PIL import Image

    kind = PICTURE_FORMATS[suffix.lower()]
    with open(path, "wb") as handle:  # closed here, even on a full disk
        Image.fromarray(to_uint8(image)).save(handle, format=kind, **PICTURE_OPTIONS.get(kind, {}))


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    return sha256_of(path).hexdigest()


def weights_sha256(path: str | os.PathLike) -> str:
    """:func:`file_sha256` of a weights file, remembered per process by path, size and
    modification time: a 500 MB network loaded again (a demo, an experiment) is hashed once."""
    resolved = Path(path).resolve()
    info = resolved.stat()
    return _remembered_sha256(resolved, info.st_size, info.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _remembered_sha256(path: Path, size: int, mtime_ns: int) -> str:
    return file_sha256(path)


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
