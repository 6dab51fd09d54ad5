"""A local HTTP server for download tests: serves one payload, can ignore Range or cut a response
short, and records what it was asked and what it sent."""

from __future__ import annotations

import contextlib
import dataclasses
import random
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PAYLOAD = random.Random(0).randbytes(300_000)  # large enough to cut a download in the middle


@dataclasses.dataclass
class FileServer:
    """Serves ``payload``; records every request's Range header and how many body bytes it sent."""

    payload: bytes = PAYLOAD
    honour_range: bool = True
    cut_after: int | None = None  # close the connection after this many body bytes, once
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
            self.send_header("Content-Length", str(len(body)))
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
