"""Parsers for GIMP patterns (``.pat``) and idx arrays (MNIST-style ``*-ubyte[.gz]``).

Both are written by hand so that reading the offline datasets needs nothing beyond numpy, and every
way a file can be wrong ends in a :class:`~paramviz.errors.UserError` that names the file.

GIMP pattern, version 1 (as written by GIMP 1.x–2.10; all integers big-endian uint32)::

    header_size  version(=1)  width  height  bytes_per_pixel  b"GPAT"  name... NUL
    width * height * bytes_per_pixel bytes of pixels, row-major, interleaved channels

``header_size`` covers the whole header including the NUL-terminated UTF-8 name, so the name is
``header_size - 24`` bytes. Bytes per pixel: 1 grey, 2 grey + alpha, 3 RGB, 4 RGBA.

idx (LeCun's MNIST format)::

    0x00 0x00 dtype_code ndim   ndim big-endian uint32 dimensions   big-endian data
"""

from __future__ import annotations

import gzip
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from paramviz.errors import UserError

PAT_MAGIC = b"GPAT"
PAT_FIXED_HEADER = struct.Struct(">5I4s")  # header_size, version, width, height, bpp, magic
PAT_MAX_SIDE = 524288  # GIMP_MAX_IMAGE_SIZE: GIMP itself rejects larger patterns
PAT_CHANNEL_NAMES = {1: "grey", 2: "grey+alpha", 3: "RGB", 4: "RGBA"}

IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


@dataclass(frozen=True)
class Pattern:
    """A GIMP pattern: its embedded name and its pixels as ``(H, W, C)`` uint8, C = bytes/pixel."""

    name: str
    image: np.ndarray


def read_bytes(path: str | Path, what: str) -> bytes:
    """The whole file, or a UserError saying which ``what`` could not be read and why."""
    try:
        return Path(path).read_bytes()
    except OSError as err:
        raise UserError(f"cannot read {what} {path}: {err.strerror or err}") from err


def parse_pat(data: bytes, source: str = "<bytes>") -> Pattern:
    """Decode one GIMP pattern; ``source`` names the file in error messages."""
    if len(data) < PAT_FIXED_HEADER.size:
        raise UserError(
            f"{source}: not a GIMP pattern: {len(data)} bytes is shorter than the "
            f"{PAT_FIXED_HEADER.size}-byte header"
        )
    header_size, version, width, height, bpp, magic = PAT_FIXED_HEADER.unpack_from(data)
    if magic != PAT_MAGIC:
        raise UserError(f"{source}: not a GIMP pattern: magic {magic!r}, expected {PAT_MAGIC!r}")
    if version != 1:
        raise UserError(f"{source}: unsupported GIMP pattern version {version} (only 1 exists)")
    if not PAT_FIXED_HEADER.size < header_size <= len(data):
        raise UserError(
            f"{source}: bad GIMP pattern header: header size {header_size} must exceed "
            f"{PAT_FIXED_HEADER.size} (room for the NUL-terminated name) and fit in the "
            f"{len(data)}-byte file"
        )
    if not (1 <= width <= PAT_MAX_SIDE and 1 <= height <= PAT_MAX_SIDE):
        raise UserError(
            f"{source}: bad GIMP pattern header: {width}x{height} pixels "
            f"(each side must be 1..{PAT_MAX_SIDE})"
        )
    if bpp not in PAT_CHANNEL_NAMES:
        raise UserError(
            f"{source}: bad GIMP pattern header: {bpp} bytes per pixel "
            "(expected 1 grey, 2 grey+alpha, 3 RGB or 4 RGBA)"
        )
    needed = width * height * bpp
    available = len(data) - header_size
    if available < needed:
        raise UserError(
            f"{source}: truncated GIMP pattern: {width}x{height} {PAT_CHANNEL_NAMES[bpp]} "
            f"needs {needed} bytes of pixels, the file has {available}"
        )
    # GIMP converts a name that is not UTF-8 rather than refuse the file; replacing does the same.
    raw_name = data[PAT_FIXED_HEADER.size : header_size].split(b"\0", 1)[0]
    pixels = np.frombuffer(data, np.uint8, count=needed, offset=header_size)
    return Pattern(raw_name.decode("utf-8", "replace"), pixels.reshape(height, width, bpp).copy())


def read_pat(path: str | Path) -> Pattern:
    """Read a GIMP ``.pat`` file (trailing bytes after the pixels are ignored, as GIMP does)."""
    return parse_pat(read_bytes(path, "GIMP pattern"), str(path))


def parse_idx(data: bytes, source: str = "<bytes>") -> np.ndarray:
    """Decode one idx array into native byte order; ``source`` names the file in error messages."""
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] not in IDX_DTYPES:
        raise UserError(
            f"{source}: not an idx file: magic {data[:4]!r} (expected 00 00, a type code in "
            f"{sorted(IDX_DTYPES)}, and the number of dimensions)"
        )
    dtype, ndim = IDX_DTYPES[data[2]], data[3]
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise UserError(f"{source}: truncated idx file: header of {ndim} dimensions is cut off")
    shape = struct.unpack_from(f">{ndim}I", data, 4)
    needed = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    available = len(data) - header_size
    if available < needed:
        raise UserError(
            f"{source}: truncated idx file: shape {shape} of {dtype.name} needs {needed} bytes, "
            f"the file has {available}"
        )
    values = np.frombuffer(data, dtype, count=needed // dtype.itemsize, offset=header_size)
    return values.reshape(shape).astype(dtype.newbyteorder("="))


def read_idx(path: str | Path) -> np.ndarray:
    """Read an idx file, gunzipping it first when its name ends in ``.gz``."""
    data = read_bytes(path, "idx file")
    if str(path).endswith(".gz"):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as err:
            raise UserError(f"{path}: corrupt gzip data ({err}); reinstall the file") from err
    return parse_idx(data, str(path))
