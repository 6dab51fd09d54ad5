"""The command line's persistent cache of compiled XLA programs, and its failures in one line.

Every command keeps the programs it compiles in ``$PARAMVIZ_HOME/jax-cache`` (or where
``$JAX_COMPILATION_CACHE_DIR`` says), so a repeated command loads them instead of compiling.
A folder that cannot be written is said once and the command goes on without the cache; an
entry JAX cannot read (a damaged file) is deleted, so that it is compiled and kept anew instead
of warning on every run, and said in one line rather than JAX's multi-line warning.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import sys
import tempfile
import warnings
import zlib
from collections.abc import Iterator, MutableMapping
from pathlib import Path

CACHE_VARIABLE = "JAX_COMPILATION_CACHE_DIR"
_CACHE_WARNING = re.compile(
    r"Error (reading|writing) persistent compilation cache entry for '([^']+)': ([^\n]*)"
)


def use_compile_cache(
    environ: MutableMapping[str, str] = os.environ, folder: Path | None = None
) -> Path | None:
    """Keep compiled XLA programs in ``folder``, by default under ``$PARAMVIZ_HOME``, unless
    ``environ`` names a cache already: a repeated command then loads them instead of compiling.
    Every program is kept, however quick its compile: JAX looks each one up anyway, and a small
    one loads in a few ms where compiling it again takes tens. Set before jax is imported (the
    benchmark sets a worker's environment with it). Returns the cache folder, or None (said in
    one line) when it cannot be written."""
    from paramviz.paths import compile_cache_dir

    cache = Path(environ.get(CACHE_VARIABLE) or folder or compile_cache_dir())
    if problem := _unwritable(cache):
        print(
            f"paramviz: the compile cache {cache} cannot be used ({problem}); going on "
            f"without it (set $PARAMVIZ_HOME or ${CACHE_VARIABLE} to a writable folder)",
            file=sys.stderr,
        )
        environ.pop(CACHE_VARIABLE, None)
        return None
    environ[CACHE_VARIABLE] = str(cache)
    environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    return cache


def _unwritable(folder: Path) -> str | None:
    """Why no file can be created in ``folder`` (created if missing), or None."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".paramviz-probe-"):
            pass
    except OSError as err:
        return err.strerror or str(err)
    return None


def is_damaged(entry: Path) -> bool:
    """Whether a cache file holds no compressed program (JAX writes zstandard or zlib)."""
    data = entry.read_bytes()
    with contextlib.suppress(zlib.error):
        zlib.decompress(data)
        return False
    with contextlib.suppress(ImportError, Exception):
        import zstandard

        zstandard.ZstdDecompressor().decompress(data)
        return False
    return True


def drop_damaged_entries(folder: Path, program: str) -> list[Path]:
    """Delete the entries of ``program`` in ``folder`` that cannot be decompressed."""
    dropped = []
    for entry in folder.glob(f"{glob.escape(program)}-*-cache"):
        if entry.is_file() and is_damaged(entry):
            entry.unlink(missing_ok=True)
            dropped.append(entry)
    return dropped


@contextlib.contextmanager
def one_line_warnings(folder: Path | None) -> Iterator[None]:
    """JAX's warnings about cache entries as one line each (once per kind), damaged entries
    dropped; every other warning shown as Python shows it."""
    said: set[str] = set()
    with warnings.catch_warnings():
        show = warnings.showwarning

        def one_line(message, category, filename, lineno, file=None, line=None):
            found = _CACHE_WARNING.search(str(message))
            if found is None:
                return show(message, category, filename, lineno, file, line)
            action, program, reason = found.groups()
            dropped = (
                drop_damaged_entries(folder, program) if folder and action == "reading" else []
            )
            if dropped:
                text = (
                    f"a damaged compile-cache entry of {program} was deleted and is compiled anew"
                )
            else:
                verb = "read" if action == "reading" else "written"
                text = f"the compile cache could not be {verb} ({reason})"
            if text not in said:
                said.add(text)
                print(f"paramviz: {text}", file=sys.stderr)
            return None

        warnings.showwarning = one_line
        yield
