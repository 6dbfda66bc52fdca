"""HTTP fetching that is safe and polite: own DNS and address checks, manual redirects, a streamed
byte cap, timeouts, robots.txt and X-Robots-Tag, Retry-After backoff and host cut-off.

Built on http.client with keep-alive connections pooled per host (hosts.py): it lets us connect to
the address we checked, read headers before deciding to read a body, and drop a connection mid-body.

Every hop of a redirect chain is a new request judged like the first: its host's opt-outs, its robots.txt,
its addresses (safety.address_problem). `total_timeout` is one budget for a row's whole exchange (connect,
TLS, each hop's headers and body); its sockets refuse to wait past it on any receive, so a server that
trickles a header byte at a time cannot hold a row.
"""

from __future__ import annotations

import email.utils
import http.client
import logging
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urljoin

from curate.download.config import DownloadConfig
from curate.download.hosts import HostState, HostTable
from curate.download.robots import MAX_ROBOTS_BYTES, RobotsRules, parse_robots, x_robots_blocked
from curate.download.safety import address_problem
from curate.urls import Target, parse_target

log = logging.getLogger(__name__)

CHUNK = 64 * 1024
REDIRECT_STATUSES = (301, 302, 303, 307, 308)
DRAIN_LIMIT = 64 * 1024  # error/redirect bodies up to this size are read to keep the connection alive
MAX_CACHED_ORIGINS = 50_000  # DNS answers and robots.txt rules kept per worker process


class FetchError(Exception):
    """A fetch that ended without an image body; `error_class` is from curate.schema.ERROR_CLASSES."""

    def __init__(
        self,
        error_class: str,
        message: str,
        http_status: int | None = None,
        final_url: str | None = None,
        content_type: str | None = None,
    ) -> None:
        super().__init__(message)
        self.error_class = error_class
        self.http_status = http_status
        self.final_url = final_url
        self.content_type = content_type


class _Stale(Exception):
    """The server closed the connection before answering (often an idle keep-alive one)."""


class _RetryLater(Exception):
    def __init__(self, status: int, wait: float | None) -> None:
        self.status, self.wait = status, wait


@dataclass
class Response:
    body: bytes
    http_status: int
    final_url: str
    content_type: str | None


@dataclass
class _Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes | None


class _Budget:
    """What is left of one exchange's total_timeout. Only time holding a connection slot is charged: time
    queued behind the per-host cap, or waiting out a Retry-After, is politeness, not the exchange."""

    def __init__(self, seconds: float) -> None:
        self.left = seconds


class _DeadlineMixin:
    """A socket whose every receive waits at most until its exchange's deadline (and read_timeout).

    A per-receive timeout alone lets a server that sends one byte every half second hold a request for
    ever; http.client reads headers through such receives, so the deadline must sit here.
    """

    __slots__ = ()
    deadline: float | None = None
    read_timeout: float = 0.0

    def limit(self, deadline: float, read_timeout: float) -> None:
        self.deadline, self.read_timeout = deadline, read_timeout

    def _arm(self) -> None:
        if self.deadline is None:
            return
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("total time limit reached")
        self.settimeout(min(left, self.read_timeout))

    def recv_into(self, *args, **kwargs):
        self._arm()
        return super().recv_into(*args, **kwargs)

    def recv(self, *args, **kwargs):
        self._arm()
        return super().recv(*args, **kwargs)


class _DeadlineSocket(_DeadlineMixin, socket.socket):
    pass


class _DeadlineSSLSocket(_DeadlineMixin, ssl.SSLSocket):
    pass


Refuse = Callable[[str], str | None]  # why a URL (a redirect hop) is opted out, or None


class Fetcher:
    """Fetches URLs for one worker process; its caches (DNS, robots, hosts) are shared by its threads."""

    def __init__(self, config: DownloadConfig) -> None:
        self.config = config
        self.hosts = HostTable(config.max_connections_per_host)
        self._dns: dict[tuple[str, int], list[str] | FetchError] = {}
        # glibc's stub resolver loses answers under many parallel queries (5 s timeouts): bound them.
        self._dns_slots = threading.BoundedSemaphore(config.dns_concurrency)
        self._dns_failures = 0
        self._dns_successes = 0
        self._dns_down = ""  # set when lookups fail for every host: the rest fail fast as `dns`
        self._robots: dict[tuple, tuple[threading.Event, list]] = {}
        self._lock = threading.Lock()
        self._ssl = ssl.create_default_context(cafile=config.ca_file)
        self._ssl.sslsocket_class = _DeadlineSSLSocket
        self._headers = {
            "User-Agent": config.user_agent,
            "Accept": "image/avif,image/webp,image/png,image/jpeg,image/*;q=0.8,*/*;q=0.5",
            "Accept-Encoding": "identity",
        }

    def close(self) -> None:
        self.hosts.close()

    # -- public -------------------------------------------------------------------------------
    def fetch(self, url: str, refuse: Refuse | None = None) -> Response:
        """GET an image URL following at most max_redirects redirects; raise FetchError otherwise.

        `refuse` is asked about every hop (opt-out lists, takedowns); robots.txt of every hop's host too.
        """
        budget = _Budget(self.config.total_timeout)
        current = url
        for _ in range(self.config.max_redirects + 1):
            target = parse_target(current)
            if target is None:
                raise FetchError(
                    "invalid_url", f"not an absolute http(s) URL: {current[:200]!r}", final_url=current
                )
            why = refuse(current) if refuse is not None else None
            if why:
                raise FetchError(
                    "opted_out",
                    f"{why} (reached by a redirect)" if current != url else why,
                    final_url=current,
                )
            if self.config.respect_robots_txt and not self._robots_rules(target).allowed(target.path):
                raise FetchError(
                    "robots_disallowed",
                    f"robots.txt of {target.host} disallows {target.path[:200]} for "
                    f"'{self.config.user_agent_token}'",
                    final_url=current,
                )
            answer = self._get_with_backoff(target, budget, self.config.max_bytes, truncate=False, image=True)
            if answer.status in REDIRECT_STATUSES:
                location = answer.headers.get("Location")
                if not location:
                    raise FetchError(
                        "protocol_error",
                        f"HTTP {answer.status} without a Location header",
                        answer.status,
                        current,
                    )
                current = urljoin(current, location.strip())
                continue
            ctype = answer.headers.get("Content-Type")
            if answer.status >= 400 or answer.body is None:
                cls = (
                    "http_429" if answer.status == 429 else "http_5xx" if answer.status >= 500 else "http_4xx"
                )
                raise FetchError(
                    cls,
                    f"HTTP {answer.status} {http.client.responses.get(answer.status, '')}".strip(),
                    answer.status,
                    current,
                    ctype,
                )
            return Response(answer.body, answer.status, current, ctype)
        raise FetchError(
            "too_many_redirects", f"more than {self.config.max_redirects} redirects", None, current
        )

    # -- robots.txt ----------------------------------------------------------------------------
    def _robots_rules(self, target: Target) -> RobotsRules:
        """robots.txt of the URL's origin, fetched once per worker (others wait for the first fetch)."""
        key = (target.scheme, target.host, target.port)
        with self._lock:
            entry = self._robots.get(key)
            owner = entry is None
            if owner:
                if len(self._robots) >= MAX_CACHED_ORIGINS:  # memory stays flat on host-diverse lists
                    for old in list(self._robots)[: MAX_CACHED_ORIGINS // 2]:
                        del self._robots[old]  # threads waiting on an entry keep their own reference
                entry = self._robots[key] = (threading.Event(), [])
        event, box = entry
        if owner:
            try:
                box.append(self._load_robots(target))
            except FetchError as exc:
                box.append(exc)
            finally:
                event.set()
        else:
            event.wait()
        result = box[0]
        if isinstance(result, FetchError):
            raise FetchError(
                result.error_class, f"{result} (fetching robots.txt)", result.http_status, target.url
            )
        return result

    def _load_robots(self, origin: Target) -> RobotsRules:
        """The rules at origin/robots.txt; its fetch has a budget of its own (its answer serves many rows)."""
        url = f"{origin.origin}/robots.txt"
        budget = _Budget(self.config.total_timeout)
        for _ in range(5):  # RFC 9309 2.3.1.2: follow at least five redirects
            target = parse_target(url)
            if target is None:
                return RobotsRules()
            answer = self._get_with_backoff(target, budget, MAX_ROBOTS_BYTES, truncate=True, image=False)
            if answer.status in REDIRECT_STATUSES and answer.headers.get("Location"):
                url = urljoin(url, answer.headers["Location"].strip())
                continue
            if 200 <= answer.status < 300 and answer.body is not None:
                return parse_robots(answer.body.decode("utf-8", "replace"), self.config.user_agent_token)
            if answer.status == 429 or answer.status >= 500:
                log.info(
                    "robots.txt of %s answered %d: assuming disallow (RFC 9309)", origin.host, answer.status
                )
                return RobotsRules(disallow_all=True)
            return RobotsRules()  # 4xx: no robots.txt, everything allowed
        return RobotsRules()

    # -- one request, with 429/503 backoff ----------------------------------------------------
    def _get_with_backoff(
        self, target: Target, budget: _Budget, max_bytes: int, *, truncate: bool, image: bool
    ) -> _Answer:
        cfg = self.config
        state = self.hosts.get((target.scheme, target.host, target.port))
        for attempt in range(cfg.request_retries + 1):
            try:
                return self._get(
                    target,
                    state,
                    budget,
                    max_bytes,
                    truncate=truncate,
                    image=image,
                    last_try=attempt == cfg.request_retries,
                )
            except _RetryLater as later:
                backoff = cfg.backoff_base * (2**attempt) * random.uniform(0.5, 1.5)
                wait = max(backoff, later.wait or 0.0)
                state.pause_until(time.monotonic() + wait)
                log.debug(
                    "%s answered %d, waiting %.2fs (attempt %d)", target.host, later.status, wait, attempt
                )
                time.sleep(wait)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _get(
        self,
        target: Target,
        state: HostState,
        budget: _Budget,
        max_bytes: int,
        *,
        truncate: bool,
        image: bool,
        last_try: bool,
    ) -> _Answer:
        cfg = self.config
        if state.cut_off_reason:
            raise FetchError(
                "host_unreachable",
                f"{target.host} cut off for this run: {state.cut_off_reason}",
                final_url=target.url,
            )
        with self.hosts.slot(state, cfg.max_backoff):
            started = time.monotonic()
            deadline = started + budget.left
            conn = state.take_idle()
            try:
                if conn is not None:
                    try:
                        resp, sock = self._send(conn, target.path, deadline)
                    except _Stale:
                        conn.close()  # the server closed an idle keep-alive connection: reconnect once
                        conn = None
                if conn is None:
                    conn = self._connect(target, state, deadline)
                    try:
                        resp, sock = self._send(conn, target.path, deadline)
                    except _Stale as exc:
                        raise FetchError(
                            "connect", f"server closed the connection without answering: {exc}"
                        ) from exc
                state.record(True, cfg.host_failure_limit)
                answer = self._read(
                    conn,
                    sock,
                    resp,
                    state,
                    max_bytes,
                    deadline,
                    truncate=truncate,
                    image=image,
                    last_try=last_try,
                )
            except FetchError as exc:
                if exc.error_class in ("connect", "timeout"):
                    state.record(False, cfg.host_failure_limit, f"{exc.error_class}: {exc}")
                if conn is not None:
                    conn.close()
                if exc.final_url is None:
                    exc.final_url = target.url
                raise
            except _RetryLater:
                raise
            except BaseException:
                if conn is not None:
                    conn.close()
                raise
            finally:
                budget.left -= time.monotonic() - started
            return answer

    def _send(
        self, conn: http.client.HTTPConnection, path: str, deadline: float
    ) -> tuple[http.client.HTTPResponse, socket.socket]:
        """Send the GET and read the response headers; also return the socket (the response may own it)."""
        sock = conn.sock
        try:
            sock.settimeout(self._timeout(deadline))
            sock.limit(deadline, self.config.read_timeout)
            conn.putrequest("GET", path, skip_accept_encoding=True)
            for name, value in self._headers.items():
                conn.putheader(name, value)
            conn.endheaders()
            return conn.getresponse(), sock
        except TimeoutError as exc:
            if time.monotonic() >= deadline - 0.05:
                message = (
                    f"total time limit of {self.config.total_timeout}s reached before the response headers"
                )
            else:
                message = f"no response headers within {self.config.read_timeout}s"
            raise FetchError("timeout", message) from exc
        except (http.client.RemoteDisconnected, http.client.BadStatusLine, ConnectionError) as exc:
            raise _Stale(str(exc) or type(exc).__name__) from exc
        except (http.client.HTTPException, ValueError) as exc:
            raise FetchError("protocol_error", f"bad HTTP response: {type(exc).__name__}: {exc}") from exc
        except OSError as exc:
            raise FetchError("connect", f"connection failed: {exc}") from exc

    def _timeout(self, deadline: float, limit: float | None = None) -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise FetchError("timeout", f"total time limit of {self.config.total_timeout}s reached")
        return min(self.config.read_timeout if limit is None else limit, remaining)

    # -- connections ---------------------------------------------------------------------------
    def _resolve(self, host: str, port: int) -> list[str]:
        """Addresses of host (cached, failures too); lookups are rate-limited and stop when DNS is down."""
        key = (host, port)
        cached = self._dns.get(key)
        if cached is None:
            if self._dns_down:
                cached = FetchError("dns", f"cannot resolve {host}: skipped, {self._dns_down}")
            else:
                cached = self._lookup(host, port)
            if len(self._dns) >= MAX_CACHED_ORIGINS:
                self._dns.clear()
            self._dns[key] = cached
        if isinstance(cached, FetchError):
            raise FetchError(cached.error_class, str(cached))
        return cached

    def _lookup(self, host: str, port: int) -> list[str] | FetchError:
        limit = self.config.dns_failure_limit
        with self._dns_slots:
            try:
                infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except (socket.gaierror, UnicodeError) as exc:
                with self._lock:
                    self._dns_failures += 1
                    n = self._dns_failures
                    if limit and (n >= 4 * limit or (n >= limit and not self._dns_successes)):
                        self._dns_down = (
                            f"DNS resolution failed for {n} hosts in a row "
                            f"({self._dns_successes} ever resolved): is this machine online?"
                        )
                return FetchError("dns", f"cannot resolve {host}: {exc}")
        with self._lock:
            self._dns_failures = 0
            self._dns_successes += 1
        return list(dict.fromkeys(info[4][0] for info in infos))

    def _connect(self, target: Target, state: HostState, deadline: float) -> http.client.HTTPConnection:
        cfg = self.config
        host, port = target.host, target.port
        https = target.scheme == "https"
        addresses = self._resolve(host, port)
        refused = {a: address_problem(a, cfg.allow_networks) for a in addresses}
        addresses = [a for a in addresses if refused[a] is None]
        if not addresses:
            shown = ", ".join(f"{a} ({why})" for a, why in refused.items())
            raise FetchError(
                "private_address",
                f"{host} resolves only to addresses that are not public: {shown}; "
                "name a network with --allow-networks CIDR if that is intended (link-local and "
                "cloud-metadata addresses only one by one, e.g. 169.254.10.5/32)",
            )
        last: Exception | None = None
        for address in addresses[:3]:
            if https:
                conn = http.client.HTTPSConnection(host, port, timeout=cfg.connect_timeout, context=self._ssl)
            else:
                conn = http.client.HTTPConnection(host, port, timeout=cfg.connect_timeout)
            conn._create_connection = self._socket_factory(
                address, deadline
            )  # connect to the address we checked
            try:
                conn.connect()
                return conn
            except FetchError:
                conn.close()
                raise
            except TimeoutError as exc:
                conn.close()
                last = FetchError(
                    "timeout",
                    f"connect to {host} ({address}) timed out after "
                    f"{min(cfg.connect_timeout, cfg.total_timeout)}s",
                )
                last.__cause__ = exc
            except ssl.SSLError as exc:
                conn.close()
                raise FetchError("protocol_error", f"TLS error with {host}: {exc}") from exc
            except OSError as exc:
                conn.close()
                last = FetchError("connect", f"cannot connect to {host} ({address}): {exc}")
            if time.monotonic() > deadline:
                break
        assert last is not None
        raise last

    def _socket_factory(self, address: str, deadline: float):
        """http.client's connect hook: a deadline socket to `address`, refused unless its peer is allowed."""
        cfg = self.config

        def create(hostport: tuple, timeout: float, source_address=None) -> socket.socket:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            sock = _DeadlineSocket(family, socket.SOCK_STREAM)
            try:
                sock.settimeout(self._timeout(deadline, cfg.connect_timeout))
                sock.connect((address, hostport[1]))
                peer = sock.getpeername()[0]
                problem = address_problem(peer, cfg.allow_networks)
                if problem:
                    raise FetchError("private_address", f"connected to {peer} ({problem}); refused")
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.settimeout(
                    self._timeout(deadline, cfg.connect_timeout)
                )  # one bound for the TLS handshake
            except BaseException:
                sock.close()
                raise
            return sock

        return create

    # -- responses -----------------------------------------------------------------------------
    def _read(
        self,
        conn: http.client.HTTPConnection,
        sock: socket.socket,
        resp: http.client.HTTPResponse,
        state: HostState,
        max_bytes: int,
        deadline: float,
        *,
        truncate: bool,
        image: bool,
        last_try: bool,
    ) -> _Answer:
        status = resp.status
        if status in (429, 503) and not last_try:
            wait = _retry_after(resp.headers.get("Retry-After"))
            if wait is not None and wait > self.config.max_backoff:
                conn.close()  # not returned to the pool: the caller closes connections of failed requests
                raise FetchError(
                    "http_429" if status == 429 else "http_5xx",
                    f"HTTP {status} asking to wait {wait:.0f}s, more than --max-backoff "
                    f"{self.config.max_backoff:g}s",
                    status,
                )
            self._finish(conn, resp, state)
            raise _RetryLater(status, wait)
        if not 200 <= status < 300:
            self._finish(conn, resp, state)
            return _Answer(status, resp.headers, None)
        if image:
            blocked = x_robots_blocked(
                resp.headers.get_all("X-Robots-Tag") or [],
                self.config.user_agent_token,
                self.config.x_robots_tag_block,
            )
            if blocked:
                conn.close()  # the body is never read
                raise FetchError(
                    "x_robots_tag",
                    f"X-Robots-Tag: {blocked}",
                    status,
                    content_type=resp.headers.get("Content-Type"),
                )
        length = resp.headers.get("Content-Length")
        if not truncate and length and length.isdigit() and int(length) > max_bytes:
            conn.close()
            raise FetchError(
                "too_large",
                f"Content-Length {int(length):,} exceeds --max-bytes {max_bytes:,}",
                status,
                content_type=resp.headers.get("Content-Type"),
            )
        chunks: list[bytes] = []
        size = 0
        try:
            while not resp.isclosed():  # http.client closes the response once the body is complete
                chunk = resp.read1(CHUNK)  # what has arrived; the socket waits no longer than the deadline
                if not chunk:
                    break
                size += len(chunk)
                if size > max_bytes:
                    conn.close()
                    if truncate:
                        chunks.append(chunk[: max_bytes - (size - len(chunk))])
                        return _Answer(status, resp.headers, b"".join(chunks))
                    raise FetchError(
                        "too_large",
                        f"body exceeds --max-bytes {max_bytes:,}; connection dropped",
                        status,
                        content_type=resp.headers.get("Content-Type"),
                    )
                chunks.append(chunk)
        except http.client.IncompleteRead as exc:
            raise FetchError(
                "protocol_error",
                f"body truncated: got {size + len(exc.partial):,} bytes, expected {length or 'more'}",
                status,
            ) from exc
        except TimeoutError as exc:
            if time.monotonic() >= deadline - 0.05:
                message = f"total time limit of {self.config.total_timeout}s reached after {size:,} bytes"
            else:
                message = f"body read stalled for {self.config.read_timeout}s after {size:,} bytes"
            raise FetchError("timeout", message, status) from exc
        except (ConnectionError, OSError) as exc:
            raise FetchError(
                "protocol_error", f"connection lost while reading the body: {exc}", status
            ) from exc
        if length and length.isdigit() and size < int(length):
            conn.close()
            raise FetchError(
                "protocol_error", f"body truncated: got {size:,} of {int(length):,} bytes", status
            )
        self._finish(conn, resp, state)
        return _Answer(status, resp.headers, b"".join(chunks))

    def _finish(
        self, conn: http.client.HTTPConnection, resp: http.client.HTTPResponse, state: HostState
    ) -> None:
        """Return the connection to the host's idle pool if the response is fully read, else close it."""
        if not resp.isclosed():
            length = resp.length
            if resp.will_close or length is None or length > DRAIN_LIMIT:
                conn.close()
                return
            try:
                resp.read()
            except (OSError, http.client.HTTPException):
                conn.close()
                return
        if resp.will_close:
            conn.close()
        else:
            state.give_back(conn)


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
