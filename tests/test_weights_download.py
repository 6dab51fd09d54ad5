"""Downloads from a local HTTP server: checksums, resuming with Range, servers ignoring Range."""

from __future__ import annotations

import dataclasses
import hashlib
import logging

import pytest
from helpers.http_server import PAYLOAD, FileServer, serve

from paramviz import paths
from paramviz.errors import UserError
from paramviz.weights import registry
from paramviz.weights.download import fetch, part_path

DIGEST = hashlib.sha256(PAYLOAD).hexdigest()


def entry_for(base_url: str, sha256: str | None = DIGEST) -> registry.WeightsEntry:
    return dataclasses.replace(
        registry.get("resnet18"), name="tiny", url=f"{base_url}/files/tiny.pth", sha256=sha256
    )


@pytest.mark.parametrize("expected", [DIGEST, DIGEST[:8]], ids=["full-sha256", "prefix"])
def test_fetch_writes_verified_file_and_no_part(tmp_path, expected):
    state = FileServer()
    with serve(state) as url:
        path = fetch(entry_for(url, expected), tmp_path, progress=False)
    assert path == tmp_path / "tiny.pth"
    assert path.read_bytes() == PAYLOAD
    assert not part_path(path).exists()
    assert state.ranges == [None]


def test_default_destination_is_the_downloads_cache():
    with serve(FileServer()) as url:
        path = fetch(entry_for(url), progress=False)
    assert path.parent == paths.downloads_dir()


def test_bad_hash_leaves_neither_file_nor_part(tmp_path):
    with serve(FileServer()) as url, pytest.raises(UserError, match="checksum mismatch"):
        fetch(entry_for(url, "0" * 64), tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_interrupted_download_resumes_from_part_file(tmp_path):
    cut = 100_000
    with serve(FileServer(cut_after=cut)) as url, pytest.raises(UserError, match="again to resume"):
        fetch(entry_for(url), tmp_path, progress=False)
    final = tmp_path / "tiny.pth"
    assert not final.exists()
    assert part_path(final).read_bytes() == PAYLOAD[:cut]

    state = FileServer()
    with serve(state) as url:
        path = fetch(entry_for(url), tmp_path, progress=False)
    assert state.ranges == [f"bytes={cut}-"]
    assert state.bytes_sent == [len(PAYLOAD) - cut]
    assert path.read_bytes() == PAYLOAD
    assert not part_path(final).exists()


def test_server_ignoring_range_restarts_from_zero(tmp_path, caplog):
    final = tmp_path / "tiny.pth"
    part_path(final).write_bytes(b"stale bytes that must not survive")
    state = FileServer(honour_range=False)
    with serve(state) as url, caplog.at_level(logging.WARNING):
        path = fetch(entry_for(url), tmp_path, progress=False)
    assert state.ranges == ["bytes=33-"]
    assert path.read_bytes() == PAYLOAD
    assert "ignored the resume request" in caplog.text


def test_complete_part_file_answered_416_is_finished(tmp_path):
    final = tmp_path / "tiny.pth"
    part_path(final).write_bytes(PAYLOAD)
    state = FileServer()
    with serve(state) as url:
        path = fetch(entry_for(url), tmp_path, progress=False)
    assert state.ranges == [f"bytes={len(PAYLOAD)}-"]
    assert path.read_bytes() == PAYLOAD


def test_cached_file_is_reused_without_network(tmp_path):
    with serve(FileServer()) as url:
        entry = entry_for(url)
        fetch(entry, tmp_path, progress=False)
    assert fetch(entry, tmp_path, progress=False).read_bytes() == PAYLOAD  # server is gone


def test_cached_file_with_wrong_hash_is_reported(tmp_path):
    (tmp_path / "tiny.pth").write_bytes(b"not the published file")
    with pytest.raises(UserError, match="does not match the published checksum"):
        fetch(entry_for("http://127.0.0.1:9"), tmp_path, progress=False)


def test_unverifiable_download_warns(tmp_path, caplog):
    with serve(FileServer()) as url, caplog.at_level(logging.WARNING):
        path = fetch(entry_for(url, sha256=None), tmp_path, progress=False)
    assert path.read_bytes() == PAYLOAD
    assert "NOT verified" in caplog.text and DIGEST in caplog.text


def test_network_error_explains_manual_download(tmp_path):
    with serve(FileServer()) as url:
        pass  # the port is closed again: nothing listens there now
    entry = entry_for(url)
    with pytest.raises(UserError, match="No network") as err:
        fetch(entry, tmp_path, progress=False)
    assert entry.url in str(err.value) and "paramviz weights convert" in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_http_error_is_a_user_error(tmp_path):
    with serve(FileServer()) as url, pytest.raises(UserError, match="HTTP 404"):
        missing = dataclasses.replace(entry_for(url), url=f"{url}/missing.pth")
        fetch(missing, tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []
