"""The HTTP mechanics of the synthetic web: a threaded HTTP/1.1 server that counts what it sees.

It records every request and, per Host header, the largest number of connections open at once, so
tests can check a client's politeness from the server side. Responses are written in one send where
possible (no Nagle stalls on keep-alive connections); routing lives in routes.py.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, NamedTuple

from curate.synthweb.routes import respond

if TYPE_CHECKING:
    from curate.synthweb.web import SyntheticWeb

log = logging.getLogger(__name__)


class RequestRecord(NamedTuple):
    time: float
    host: str  # the Host header as sent
    path: str
    client: tuple[str, int]


class ConnectionStats:
    """Thread-safe request log and per-host open-connection counts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: list[RequestRecord] = []
        self.open: dict[str, int] = {}
        self.max_open: dict[str, int] = {}

    def request(self, record: RequestRecord) -> None:
        with self._lock:
            self.requests.append(record)

    def opened(self, host: str) -> None:
        with self._lock:
            self.open[host] = self.open.get(host, 0) + 1
            self.max_open[host] = max(self.max_open.get(host, 0), self.open[host])

    def closed(self, host: str) -> None:
        with self._lock:
            self.open[host] -= 1

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.max_open = {host: n for host, n in self.open.items() if n}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    server_version = "SynthWeb/1.0"
    timeout = 30  # idle keep-alive connections are closed after this many seconds
    server: SynthServer

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._host: str | None = None
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.server.track(self.connection, False)
            if self._host is not None:
                self.server.stats.closed(self._host)

    def handle(self) -> None:
        try:
            super().handle()
        except (TimeoutError, ConnectionError, OSError) as exc:  # the client went away: normal on the web
            log.debug("connection from %s ended: %s", self.client_address, exc)

    def _begin(self) -> None:
        host = self.headers.get("Host", "")
        if self._host is None:
            self._host = host
            self.server.stats.opened(host)
        self.server.stats.request(RequestRecord(time.time(), host, self.path, self.client_address[:2]))

    def do_GET(self) -> None:
        self._begin()
        respond(self.server.web, self, head_only=False)

    def do_HEAD(self) -> None:
        self._begin()
        respond(self.server.web, self, head_only=True)

    # Response primitives used by routes.py.

    def head_bytes(self, status: int, headers: Iterable[tuple[str, str]]) -> bytes:
        lines = [
            f"HTTP/1.1 {status} {self.responses.get(status, ('',))[0]}",
            f"Server: {self.server_version}",
            f"Date: {self.date_time_string()}",
        ]
        lines += [f"{k}: {v}" for k, v in headers]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def send(
        self,
        status: int,
        content_type: str,
        body: bytes,
        head_only: bool,
        extra: Iterable[tuple[str, str]] = (),
    ) -> None:
        """A complete response with Content-Length, written in one send."""
        headers = [("Content-Type", content_type), ("Content-Length", str(len(body))), *extra]
        self.log_request(status)
        self.wfile.write(self.head_bytes(status, headers) + (b"" if head_only else body))

    def abort(self) -> None:
        """Drop the connection without finishing the response."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def log_message(self, format: str, *args) -> None:
        log.debug("%s %s", self.address_string(), format % args)


class SynthServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that knows its web and can close every open connection on stop."""

    daemon_threads = True
    request_queue_size = 256
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], web: SyntheticWeb) -> None:
        self.web = web
        self.stats = ConnectionStats()
        self.closing = threading.Event()
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(address, Handler)

    def handle_error(self, request, client_address) -> None:
        """A handler failure is logged (not printed as a bare traceback) and ends that connection only."""
        log.exception("synthetic web: error while serving %s", client_address)

    def track(self, conn: socket.socket, add: bool) -> None:
        with self._conns_lock:
            (self._conns.add if add else self._conns.discard)(conn)

    def close_all(self) -> None:
        """Wake stalled handlers and close every open connection (used by stop())."""
        self.closing.set()
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
