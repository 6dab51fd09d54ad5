"""Download a registered checkpoint: resumable, checksummed, never a half file at the final path.

The bytes go to ``<file>.part`` beside the final path (a stable name, unlike
:func:`paramviz.io.atomic_path`, so an interrupted download can resume with an HTTP ``Range``
request); only a complete file whose checksum agrees is renamed onto the final path. Entries
without a published checksum are checked by content instead: a web page (``Content-Type``), an
empty or truncated file or one that is not a PyTorch checkpoint at all is deleted, before the
rename and again when found in the cache.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

from paramviz import paths
from paramviz import progress as progress_bars
from paramviz.errors import UserError
from paramviz.io import file_sha256, sha256_of
from paramviz.weights import registry
from paramviz.weights.checkpoint import CorruptCheckpoint, check_torch_file_header
from paramviz.weights.registry import WeightsEntry

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
TIMEOUT_S = 60
USER_AGENT = "paramviz-weights"
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+|\*)(?:-(\d+))?/(\d+|\*)")


def fetch(
    name_or_entry: str | WeightsEntry,
    dest_dir: str | os.PathLike | None = None,
    progress: bool | None = None,
) -> Path:
    """Download a checkpoint into ``dest_dir`` (default: the downloads cache) and return its path.

    A file already at the final path is reused (after checking its hash when one is known).
    ``progress``: a bar (``None``: on a terminal only, see :mod:`paramviz.progress`).
    """
    entry = registry.get(name_or_entry) if isinstance(name_or_entry, str) else name_or_entry
    dest = Path(dest_dir) if dest_dir is not None else paths.downloads_dir()
    final = dest / entry.filename
    if final.is_file() and _check_cached(entry, final):
        return final
    dest.mkdir(parents=True, exist_ok=True)
    part = part_path(final)
    digest = _download_to_part(entry, part, final, progress)
    _verify_or_discard(entry, part, digest)
    os.replace(part, final)
    return final


def part_path(final: Path) -> Path:
    """Where the bytes of ``final`` accumulate until the download is complete and verified."""
    return final.with_name(final.name + ".part")


def _check_cached(entry: WeightsEntry, final: Path) -> bool:
    """Whether the file at ``final`` can be used; an unverifiable one that is not a checkpoint
    is deleted (and downloaded again)."""
    if entry.sha256 is None:
        try:
            check_torch_file_header(final)
        except CorruptCheckpoint as err:
            final.unlink(missing_ok=True)
            log.warning("deleted the cached %s and downloading it again: %s", final.name, err)
            return False
        return True
    digest = file_sha256(final)
    if not entry.matches_sha256(digest):
        raise UserError(
            f"{final} does not match the published checksum of {entry.name} (expected sha256 "
            f"{entry.sha256}..., got {digest}). Delete it and run `paramviz weights fetch "
            f"{entry.name}` again."
        )
    return True


def _download_to_part(entry: WeightsEntry, part: Path, final: Path, progress: bool | None) -> str:
    """Fill ``part`` with the whole file, resuming what is there; returns the file's sha256."""
    offset = part.stat().st_size if part.is_file() else 0
    try:
        response = urlopen(_request(entry.url, offset), timeout=TIMEOUT_S)
    except HTTPError as err:
        err.close()
        if err.code == 416 and offset:
            return _finish_unsatisfiable_range(entry, part, final, progress, err, offset)
        raise _network_error(entry, final, f"HTTP {err.code} {err.reason}") from None
    except (URLError, OSError, http.client.HTTPException) as err:
        raise _network_error(entry, final, getattr(err, "reason", err)) from None
    with response:
        _check_content_type(entry, response, part)
        start = _resume_start(response, offset)
        if start is not None:
            return _write_body(response, part, entry, start, bool(offset), progress)
    # A partial answer that does not continue the part file: start over from scratch.
    part.unlink(missing_ok=True)
    if not offset:
        raise UserError(f"{entry.url} answered a plain download with a partial one")
    return _download_to_part(entry, part, final, progress)


def _write_body(
    response, part: Path, entry: WeightsEntry, start: int, resuming: bool, progress: bool | None
) -> str:
    """Append the body at ``start`` (0 truncates the part file); returns the file's sha256."""
    if resuming and start == 0:
        log.warning("the server ignored the resume request; downloading %s again", entry.filename)
    hasher = sha256_of(part) if start else hashlib.sha256()
    expected_total = _total_size(response, start)
    with open(part, "ab" if start else "wb") as out:
        _stream(response, out, hasher, entry, start, expected_total, progress)
    size = part.stat().st_size
    if expected_total is not None and size != expected_total:
        raise _interrupted(entry, size, expected_total)
    return hasher.hexdigest()


def _request(url: str, offset: int) -> Request:
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    return Request(url, headers=headers)


def _resume_start(response, offset: int) -> int | None:
    """The byte offset the body starts at: ``offset`` on a proper 206, 0 on a plain 200.

    ``None`` for a 206 that does not continue where the part file ends.
    """
    if response.status != 206:
        return 0
    match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
    if match and match.group(1) != "*" and int(match.group(1)) == offset:
        return offset
    return None


def _total_size(response, start: int) -> int | None:
    """The full file size the server promised, when it said."""
    length = response.headers.get("Content-Length")
    return start + int(length) if length and length.isdigit() else None


def _stream(
    response, out, hasher, entry: WeightsEntry, start: int, total, progress: bool | None
) -> None:
    with progress_bars.bar(
        total=total,
        initial=start,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=entry.filename,
        enabled=progress,
    ) as bar:
        try:
            while chunk := response.read(CHUNK_BYTES):
                out.write(chunk)
                hasher.update(chunk)
                bar.update(len(chunk))
        except (http.client.HTTPException, OSError):
            raise _interrupted(entry, out.tell(), total) from None


def _finish_unsatisfiable_range(entry, part, final, progress, err, offset: int) -> str:
    """A 416 answer: the part file may already be complete; otherwise start over."""
    match = _CONTENT_RANGE.match(err.headers.get("Content-Range", "") if err.headers else "")
    if match and match.group(3) != "*" and int(match.group(3)) == offset:
        return file_sha256(part)
    part.unlink(missing_ok=True)
    return _download_to_part(entry, part, final, progress)


def _check_content_type(entry: WeightsEntry, response, part: Path) -> None:
    """A web page (a login or error page served with status 200) is never the checkpoint."""
    kind = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if kind.startswith("text/") or kind in ("application/json", "application/xhtml+xml"):
        part.unlink(missing_ok=True)
        raise UserError(
            f"{entry.url} answered with a {kind} page, not the checkpoint of {entry.name}; "
            "nothing was kept. Is the address still right? Try it in a browser."
        )


def _verify_or_discard(entry: WeightsEntry, part: Path, digest: str) -> None:
    if entry.sha256 is None:
        try:
            check_torch_file_header(part)  # empty, truncated zip, HTML, not a checkpoint at all
        except CorruptCheckpoint as err:
            part.unlink(missing_ok=True)
            raise UserError(
                f"the download of {entry.name} is not a complete checkpoint ({err}); it was "
                f"deleted. Run `paramviz weights fetch {entry.name}` again."
            ) from None
        log.warning(
            "%s has no published checksum: the download is NOT verified (its sha256 is %s)",
            entry.name,
            digest,
        )
        return
    if not entry.matches_sha256(digest):
        part.unlink(missing_ok=True)
        raise UserError(
            f"checksum mismatch for {entry.filename}: expected sha256 {entry.sha256}..., got "
            f"{digest}. The download was deleted; run `paramviz weights fetch {entry.name}` again "
            "(if it keeps failing, the file on the server is not the published one)."
        )


def _network_error(entry: WeightsEntry, final: Path, reason) -> UserError:
    return UserError(
        f"cannot download {entry.name} from {entry.url}: {reason}. No network? Download it "
        f"manually from {entry.url} and run `paramviz weights convert FILE --arch {entry.arch} "
        f"-o {registry.converted_path(entry.name)}`, or put it at {final} and run "
        f"`paramviz weights fetch {entry.name}` again."
    )


def _interrupted(entry: WeightsEntry, got: int, total: int | None) -> UserError:
    of_total = f" of {total}" if total is not None else ""
    return UserError(
        f"download of {entry.name} interrupted after {got}{of_total} bytes; run `paramviz weights "
        f"fetch {entry.name}` again to resume."
    )
