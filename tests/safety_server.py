"""Loopback helpers for the download safety tests: a server with the hostile behaviours they need, and a
recorder of every socket connection this process makes.

Routes: /img/N.jpg; /xrt/N.jpg?tag=VALUE (an image with `X-Robots-Tag: VALUE`); /to?url=U (302 to U);
/hop/N?delay=S (waits S seconds, then 302 to /hop/N-1; /hop/0 is an image); /trickle (a status line, then
one header byte every 0.2 s for up to 30 s). robots.txt disallows everything when asked as `localhost`.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from download_server import photo_jpeg

TRICKLE_SECONDS = 30.0


class SafetyServer:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.log: dict[str, list[str]] = defaultdict(list)  # path -> Host headers it was asked with
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def handle(self) -> None:
                try:
                    super().handle()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout): expected

            def do_GET(self) -> None:
                server.log[urlsplit(self.path).path].append(self.headers.get("Host", ""))
                server.route(self)

        self._httpd = ThreadingHTTPServer((host, 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.base_url = f"http://{host}:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> SafetyServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def url(self, path: str) -> str:
        return self.base_url + path

    def route(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        params = {k: v[0] for k, v in parse_qs(parts.query).items()}
        head, _, rest = parts.path.strip("/").partition("/")
        if parts.path == "/robots.txt":
            host = h.headers.get("Host", "").rsplit(":", 1)[0]
            return self.send(
                h, 200, b"User-agent: *\nDisallow: /\n" if host == "localhost" else b"", "text/plain"
            )
        if head in ("img", "xrt"):
            extra = {"X-Robots-Tag": params["tag"]} if head == "xrt" else {}
            return self.send(h, 200, photo_jpeg(int(rest.split(".")[0])), "image/jpeg", extra)
        if head == "to":
            return self.send(h, 302, b"", "text/plain", {"Location": params["url"]})
        if head == "hop":
            time.sleep(float(params.get("delay", 0)))
            n = int(rest)
            if n == 0:
                return self.send(h, 200, photo_jpeg(0), "image/jpeg")
            return self.send(h, 302, b"", "text/plain", {"Location": f"/hop/{n - 1}?{parts.query}"})
        if head == "trickle":
            h.wfile.write(b"HTTP/1.1 200 OK\r\nX-Padding: ")
            end = time.monotonic() + TRICKLE_SECONDS
            while time.monotonic() < end:
                h.wfile.write(b"a")
                h.wfile.flush()
                time.sleep(0.2)
            h.close_connection = True
            return None
        return self.send(h, 404, b"no such route", "text/plain")

    @staticmethod
    def send(
        h: BaseHTTPRequestHandler, status: int, body: bytes, ctype: str, extra: dict | None = None
    ) -> None:
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(body)))
        for name, value in (extra or {}).items():
            h.send_header(name, value)
        h.end_headers()
        h.wfile.write(body)


_RECORDING: list[list[tuple]] = []


def _audit(event: str, args: tuple) -> None:
    if event == "socket.connect" and _RECORDING:
        address = args[1]
        for record in _RECORDING:
            record.append(address if isinstance(address, tuple) else (address,))


_HOOKED = False


@contextmanager
def recorded_connects() -> Iterator[list[tuple]]:
    """Every socket connect this process attempts meanwhile, from any thread, as (address, port, ...).

    CPython raises the `socket.connect` audit event before each connect system call, whatever object or
    library makes it; an audit hook cannot be removed, so it is installed once and records only inside.
    """
    global _HOOKED
    if not _HOOKED:
        sys.addaudithook(_audit)
        _HOOKED = True
    record: list[tuple] = []
    _RECORDING.append(record)
    try:
        yield record
    finally:
        _RECORDING.remove(record)
