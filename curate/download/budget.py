"""A per-process budget of decoded pixels in flight, so that decode memory is bounded whatever the inputs.

A 190 KB PNG can declare 7000x7000 RGBA pixels: decoding, flattening and resizing it holds about 12 bytes
per pixel (600 MB) at its peak. With 32 fetch threads in each worker process, a page of such images would
reach the OOM killer. Each decode first reserves the pixels its header declares (after JPEG DCT scaling)
and waits until they fit; an image larger than the whole budget waits until it can run alone (the
`max_pixels` rule refuses bigger ones outright). Waiters are served in arrival order, so a large image is
not starved by a stream of small ones.

Bounding the pixels in flight bounds RSS only if freed pixels go back to the OS. glibc raises its mmap
threshold after the first large free, so later image buffers come from per-thread malloc arenas, which
keep their high-water mark: with 32 threads, RSS climbed to threads x one image even while the budget let
one decode at a time. A process that uses a budget therefore fixes the threshold (M_MMAP_THRESHOLD, 1 MiB), so
every buffer above it is mapped on its own and unmapped when freed.

Fixing the mmap threshold also freezes glibc's trim threshold at its 128 KiB default (glibc only moves it
with the dynamic threshold, to twice that threshold). The heap top was then given back after nearly every
image and faulted in again by the next: about 170 page faults and 0.3-0.5 ms of system time per image on one
thread. The trim threshold is therefore set to what glibc itself pairs with the mmap threshold (2 MiB): the
small buffers of the next image reuse the heap, and image buffers still go back to the OS.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1  # glibc <malloc.h>
M_MMAP_THRESHOLD = -3
# Buffers above this (decoded images; not a 256 px thumbnail) are mapped on their own.
MMAP_THRESHOLD_BYTES = 1024 * 1024
# Free heap top kept for reuse (glibc's own ratio to the mmap threshold); below it, nothing is trimmed.
TRIM_THRESHOLD_BYTES = 2 * MMAP_THRESHOLD_BYTES


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
            if limit > 0:
                _return_freed_buffers_to_os()
            budget = _BUDGETS[limit] = PixelBudget(limit)
        return budget


def _return_freed_buffers_to_os() -> None:
    """Fix glibc's mmap and trim thresholds in this process (a no-op elsewhere): see the module docstring."""
    if not sys.platform.startswith("linux"):
        return
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc: its allocator has no such setting
        return
    if mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) != 1:
        log.debug("mallopt(M_MMAP_THRESHOLD) refused; freed image buffers may stay in malloc arenas")
    elif mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) != 1:
        log.debug("mallopt(M_TRIM_THRESHOLD) refused; the heap top is trimmed after every image")
