"""A local HTTP server for download tests: serves one payload, can ignore Range or cut a response
short, and records what it was asked and what it sent."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import random
import re
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def zip_payload(size: int = 300_000) -> bytes:
    """A complete zip file (the container of PyTorch's format) of random bytes, large enough to
    cut a download in the middle; downloads without a checksum are checked to be one."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data/0", random.Random(0).randbytes(size))
    return buffer.getvalue()


PAYLOAD = zip_payload()


@dataclasses.dataclass
class FileServer:
    """Serves ``payload``; records every request's Range header and how many body bytes it sent."""

    payload: bytes = PAYLOAD
    honour_range: bool = True
    cut_after: int | None = None  # close the connection after this many body bytes, once
    content_type: str | None = None  # sent as Content-Type when set
    send_length: bool = True  # False: no Content-Length (the body ends when the connection does)
    ranges: list = dataclasses.field(default_factory=list)
    bytes_sent: list = dataclasses.field(default_factory=list)


def _handler(state: FileServer):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's naming)
            if not self.path.endswith("/tiny.pth"):
                self.send_error(404)
                return
            asked = self.headers.get("Range")
            state.ranges.append(asked)
            start = 0
            if asked and state.honour_range:
                start = int(re.fullmatch(r"bytes=(\d+)-", asked).group(1))
                if start >= len(state.payload):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(state.payload)}")
                    self.end_headers()
                    return
                self.send_response(206)
                end = len(state.payload) - 1
                self.send_header("Content-Range", f"bytes {start}-{end}/{len(state.payload)}")
            else:
                self.send_response(200)
            body = state.payload[start:]
            if state.send_length:
                self.send_header("Content-Length", str(len(body)))
            if state.content_type:
                self.send_header("Content-Type", state.content_type)
            self.end_headers()
            if state.cut_after is not None:
                body, state.cut_after = body[: state.cut_after], None
            self.wfile.write(body)
            state.bytes_sent.append(len(body))

        def log_message(self, *args):
            pass

    return Handler


@contextlib.contextmanager
def serve(state: FileServer) -> Iterator[str]:
    """Serve ``state`` on a free local port; yields the base URL (files are under any path
    ending in ``/tiny.pth``)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
