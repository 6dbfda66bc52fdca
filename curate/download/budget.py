"""A per-process budget of decoded pixels in flight, so that decode memory is bounded whatever the inputs.

A 190 KB PNG can declare 7000x7000 RGBA pixels: decoding, flattening and resizing it holds about 12 bytes
per pixel (600 MB) at its peak. With 32 fetch threads in each worker process, a page of such images would
reach the OOM killer. Each decode first reserves the pixels its header declares (after JPEG DCT scaling)
and waits until they fit; an image larger than the whole budget waits until it can run alone (the
`max_pixels` rule refuses bigger ones outright). Waiters are served in arrival order, so a large image is
not starved by a stream of small ones.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager


class PixelBudget:
    """At most `limit` decoded pixels in flight across this process's threads (0: no limit)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight = 0
        self.peak = 0  # the most pixels ever in flight at once: what the memory figure is made of
        self._cond = threading.Condition()
        self._queue: deque[object] = deque()

    def _fits(self, ticket: object, pixels: int) -> bool:
        if self._queue[0] is not ticket:
            return False
        return self.in_flight == 0 or self.in_flight + pixels <= self.limit

    @contextmanager
    def reserve(self, pixels: int) -> Iterator[None]:
        """Hold `pixels` of the budget for the block, waiting (in arrival order) until they fit."""
        if self.limit <= 0:
            yield
            return
        ticket = object()
        with self._cond:
            self._queue.append(ticket)
            try:
                self._cond.wait_for(lambda: self._fits(ticket, pixels))
            except BaseException:  # interrupted while waiting: leave the line, let the next one in
                self._queue.remove(ticket)
                self._cond.notify_all()
                raise
            self._queue.popleft()
            self.in_flight += pixels
            self.peak = max(self.peak, self.in_flight)
            self._cond.notify_all()  # the next in line may fit beside this one
        try:
            yield
        finally:
            with self._cond:
                self.in_flight -= pixels
                self._cond.notify_all()


_BUDGETS: dict[int, PixelBudget] = {}
_BUDGETS_LOCK = threading.Lock()


def pixel_budget(limit: int) -> PixelBudget:
    """This process's budget for `limit` (one per distinct limit, shared by every thread that uses it)."""
    with _BUDGETS_LOCK:
        budget = _BUDGETS.get(limit)
        if budget is None:
            budget = _BUDGETS[limit] = PixelBudget(limit)
        return budget
