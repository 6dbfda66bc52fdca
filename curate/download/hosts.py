"""Per-host state shared by a worker's threads: connection cap, idle keep-alive connections,
pauses asked for by 429/503, and the cut-off of hosts that keep failing.

Open connections to a host never exceed the cap: a new connection is made only when no idle one is
left, so open = in use + idle <= the number of slots.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

MAX_HOSTS = 50_000  # host states kept per worker process; least recently used ones are forgotten past this
MAX_IDLE_PER_HOST = 4


class HostState:
    def __init__(self, cap: int) -> None:
        self.slots = threading.BoundedSemaphore(cap)
        self.idle: list[http.client.HTTPConnection] = []
        self.lock = threading.Lock()
        self.not_before = 0.0  # monotonic time before which no request may start (Retry-After)
        self.consecutive_failures = 0
        self.cut_off_reason: str | None = None

    def pause_until(self, when: float) -> None:
        with self.lock:
            self.not_before = max(self.not_before, when)

    def record(self, ok: bool, limit: int, error: str = "") -> None:
        """Count consecutive connect/timeout failures; cut the host off at `limit`."""
        with self.lock:
            if ok:
                self.consecutive_failures = 0
                return
            self.consecutive_failures += 1
            if limit and self.consecutive_failures >= limit and self.cut_off_reason is None:
                self.cut_off_reason = f"{self.consecutive_failures} consecutive failures, last: {error}"

    def take_idle(self) -> http.client.HTTPConnection | None:
        with self.lock:
            return self.idle.pop() if self.idle else None

    def give_back(self, conn: http.client.HTTPConnection) -> None:
        with self.lock:
            if len(self.idle) < MAX_IDLE_PER_HOST:
                self.idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self.lock:
            idle, self.idle = self.idle, []
        for conn in idle:
            conn.close()


class HostTable:
    """Host states by (scheme, host, port), bounded, thread-safe."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._hosts: OrderedDict[tuple, HostState] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> HostState:
        with self._lock:
            state = self._hosts.get(key)
            if state is None:
                state = self._hosts[key] = HostState(self.cap)
                if len(self._hosts) > MAX_HOSTS:
                    _, old = self._hosts.popitem(last=False)
                    old.close()
            else:
                self._hosts.move_to_end(key)
            return state

    @contextmanager
    def slot(self, state: HostState, max_wait: float) -> Iterator[None]:
        """Hold one of the host's connection slots, waiting out (up to max_wait) a pause it asked for."""
        state.slots.acquire()
        try:
            wait = state.not_before - time.monotonic()
            if wait > 0:
                time.sleep(min(wait, max_wait))
            yield
        finally:
            state.slots.release()

    def close(self) -> None:
        with self._lock:
            states = list(self._hosts.values())
            self._hosts.clear()
        for state in states:
            state.close()
