"""A loopback HTTP server standing in for the datasets' publishers in fetch tests.

It serves in-memory files by name (the layout of a `--mirror`), honours `Range: bytes=N-`
requests (unless `ranges` is off), records every request, and can cut a response short:
`truncate[name] = k` sends only half of the body of the next k responses for `name` while
announcing the full Content-Length, then closes the connection.
"""

from __future__ import annotations

import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Mirror:
    """`with Mirror(files) as mirror:` serves `files` at `mirror.url` on 127.0.0.1."""

    def __init__(self, files: dict[str, bytes], ranges: bool = True) -> None:
        self.files = dict(files)
        self.ranges = ranges
        self.truncate: dict[str, int] = {}
        self.requests: list[tuple[str, str | None]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.mirror = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> "Mirror":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        mirror: Mirror = self.server.mirror  # type: ignore[attr-defined]
        name = self.path.lstrip("/")
        requested_range = self.headers.get("Range")
        mirror.requests.append((name, requested_range))
        data = mirror.files.get(name)
        if data is None:
            self.send_error(404, "Not Found")
            return
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", requested_range or "")
        if mirror.ranges and match:
            start = int(match.group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes" if mirror.ranges else "none")
        self.end_headers()
        if mirror.truncate.get(name, 0) > 0:
            mirror.truncate[name] -= 1
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (signature of the base class)
        pass


def refused_url() -> str:
    """A loopback URL where nothing listens: connecting to it is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"
