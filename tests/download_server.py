"""A small loopback HTTP server with the faults the downloader tests need that are not about pages:
per-path request logs, a server-side count of simultaneous connections, and a fault switch.

It binds to a given loopback address (127.0.0.2 lets the safety tests allow one address while a
redirect to 127.0.0.1 stays refused).
"""

from __future__ import annotations

import io
import struct
import threading
import time
import zlib
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    from typing import Self


def photo_jpeg(seed: int, size: tuple[int, int] = (640, 480), quality: int = 85) -> bytes:
    """A photo-like JPEG: smooth colour fields with noise (not a flat colour)."""
    rng = np.random.default_rng(seed)
    w, h = size
    small = (rng.random((max(2, h // 32), max(2, w // 32), 3)) * 255).astype("uint8")
    img = Image.fromarray(small).resize((w, h), Image.BICUBIC)
    arr = np.asarray(img).astype("int16") + rng.integers(-12, 12, (h, w, 3))
    buf = io.BytesIO()
    Image.fromarray(arr.clip(0, 255).astype("uint8")).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def png_bomb(width: int = 30000, height: int = 30000) -> bytes:
    """A tiny PNG whose header declares width x height pixels (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


class FaultServer:
    """Routes: /img/N.jpg[?delay=S], /flaky/N.jpg (500 while faults are on), /status/CODE, /retry-after/K,
    /stall, /slow, /truncated, /redirect/N, /loop, /redirect-to?url=U, /html, /corrupt, /huge, /huge-chunked,
    /bomb, /noai/N.jpg, /private/N.jpg (disallowed by robots.txt)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        robots: str = "User-agent: *\nDisallow: /private/\n",
        tls: tuple[str, str] | None = None,
    ) -> None:
        self.host = host
        self.robots = robots
        self.faults = True
        self.log: dict[str, list[float]] = defaultdict(list)
        self.headers_seen: list[dict] = []
        self.active = 0  # open connections
        # Requests in flight, counted from the request line to the response's first byte: a client that
        # caps its connections can start a request only after an earlier response began, so unlike open
        # connections (whose server side closes a moment after the client's) this count has no race.
        self.in_flight = 0
        self.max_concurrent = 0
        self._lock = threading.Lock()
        self._images: dict[int, bytes] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            _in_flight = False  # this connection's current request is counted in server.in_flight

            def setup(self) -> None:
                super().setup()
                with server._lock:
                    server.active += 1

            def finish(self) -> None:
                try:
                    super().finish()
                finally:
                    with server._lock:
                        server.active -= 1

            def handle(self) -> None:
                try:
                    super().handle()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client hung up (size cap, timeout): expected here

            def log_message(self, *args) -> None:
                pass

            def send_response(self, *args, **kwargs) -> None:
                self._answered()
                super().send_response(*args, **kwargs)

            def _answered(self) -> None:
                with server._lock:
                    if self._in_flight:
                        self._in_flight = False
                        server.in_flight -= 1

            def do_GET(self) -> None:
                with server._lock:
                    server.log[self.path.split("?")[0]].append(time.monotonic())
                    server.headers_seen.append(dict(self.headers))
                    self._in_flight = True
                    server.in_flight += 1
                    server.max_concurrent = max(server.max_concurrent, server.in_flight)
                try:
                    server.route(self)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    self._answered()

        self._httpd = ThreadingHTTPServer((host, 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        scheme = "http"
        if tls:  # (certificate file, key file): serve HTTPS
            import ssl

            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self._httpd.socket = ctx.wrap_socket(self._httpd.socket, server_side=True)
            scheme = "https"
        self.base_url = f"{scheme}://{host}:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def image(self, n: int) -> bytes:
        if n not in self._images:
            self._images[n] = photo_jpeg(n, (320 + (n * 37) % 500, 240 + (n * 53) % 400))
        return self._images[n]

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    # -- routing -------------------------------------------------------------------------------
    def route(self, h: BaseHTTPRequestHandler) -> None:
        path, _, query = h.path.partition("?")
        params = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
        parts = path.strip("/").split("/")
        head = parts[0]
        if path == "/robots.txt":
            return self.send(h, 200, self.robots.encode(), "text/plain")
        if head in ("img", "private", "noai", "redirect-target") and len(parts) == 2:
            if "delay" in params:
                time.sleep(float(params["delay"]))
            extra = {"X-Robots-Tag": "noai"} if head == "noai" else {}
            return self.send(h, 200, self.image(int(parts[1].split(".")[0])), "image/jpeg", extra)
        if head == "flaky":
            if self.faults:
                return self.send(h, 500, b"oops", "text/plain")
            return self.send(h, 200, self.image(int(parts[1].split(".")[0])), "image/jpeg")
        if head == "status":
            return self.send(h, int(parts[1]), b"status page", "text/plain")
        if head == "retry-after":
            hits = len(self.log[path])
            if hits <= int(parts[1]):
                return self.send(h, 429, b"slow down", "text/plain", {"Retry-After": "1"})
            return self.send(h, 200, self.image(7), "image/jpeg")
        if head == "unavailable":
            return self.send(h, 503, b"busy", "text/plain", {"Retry-After": "0"})
        if head == "stall":
            h.send_response(200)
            h.send_header("Content-Type", "image/jpeg")
            h.send_header("Content-Length", "100000")
            h.end_headers()
            h.wfile.write(self.image(1)[:100])
            h.wfile.flush()
            time.sleep(4)
            return None
        if head == "slow":
            h.send_response(200)
            h.send_header("Content-Type", "image/jpeg")
            h.send_header("Content-Length", "100000")
            h.end_headers()
            for _ in range(40):
                h.wfile.write(b"\xff" * 10)
                h.wfile.flush()
                time.sleep(0.1)
            return None
        if head == "truncated":
            body = self.image(2)
            h.send_response(200)
            h.send_header("Content-Type", "image/jpeg")
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body[: len(body) // 3])
            h.wfile.flush()
            h.close_connection = True
            return None
        if head == "redirect":
            return self.redirect(h, f"/redirect-target/{parts[1]}")
        if head == "loop":
            return self.redirect(h, "/loop")
        if head == "redirect-to":
            from urllib.parse import unquote

            return self.redirect(h, unquote(params["url"]))
        if head == "html":
            return self.send(h, 200, b"<html><body>not an image</body></html>", "text/html")
        if head == "corrupt":
            return self.send(h, 200, self.image(3)[:200] + b"\x00garbage" * 500, "image/jpeg")
        if head == "huge":
            h.send_response(200)
            h.send_header("Content-Type", "image/jpeg")
            h.send_header("Content-Length", str(64 * 1024 * 1024))
            h.end_headers()
            return None
        if head == "huge-chunked":
            h.send_response(200)
            h.send_header("Content-Type", "image/jpeg")
            h.send_header("Transfer-Encoding", "chunked")
            h.end_headers()
            block = b"\xff" * 65536
            for _ in range(200):  # 12.5 MiB unless the client hangs up first
                h.wfile.write(f"{len(block):x}\r\n".encode() + block + b"\r\n")
            h.wfile.write(b"0\r\n\r\n")
            return None
        if head == "bomb":
            return self.send(h, 200, png_bomb(), "image/png")
        return self.send(h, 404, b"not found", "text/plain")

    @staticmethod
    def send(
        h: BaseHTTPRequestHandler, code: int, body: bytes, ctype: str, extra: dict | None = None
    ) -> None:
        h.send_response(code)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(body)

    @staticmethod
    def redirect(h: BaseHTTPRequestHandler, location: str) -> None:
        h.send_response(302)
        h.send_header("Location", location)
        h.send_header("Content-Length", "0")
        h.end_headers()
