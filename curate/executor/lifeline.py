"""Worker processes die with their run: a `kill -9` of the driver must not leave workers downloading.

On Linux the kernel delivers SIGKILL to a worker when its parent dies (prctl PR_SET_PDEATHSIG). The
local pool's workers are children of multiprocessing's fork server, which exits as soon as the driver
is gone, so the signal follows the driver's death within moments. Elsewhere, and as a second guard, a
daemon thread polls: the worker exits once its parent changed (it was re-parented: the parent died) or
the driver's pid is gone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import sys
import threading

from curate.runlock import pid_alive

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
POLL_S = 0.5


def bind_to_driver(driver_pid: int, poll_s: float = POLL_S) -> None:
    """Make this worker process exit when its parent or the run's driver process dies."""
    parent = os.getppid()
    _kill_me_with_parent()
    if os.getppid() != parent or not pid_alive(driver_pid):  # died before the guard was in place
        _exit(driver_pid)
    watch = threading.Thread(
        target=_watch, args=(parent, driver_pid, poll_s), name="curate-lifeline", daemon=True
    )
    watch.start()


def _kill_me_with_parent() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            log.debug(
                "prctl(PR_SET_PDEATHSIG) failed: errno %d; the polling guard remains", ctypes.get_errno()
            )
    except OSError as exc:  # no loadable libc (static or unusual builds): the polling guard remains
        log.debug("cannot load libc for prctl: %s", exc)


def _watch(parent: int, driver_pid: int, poll_s: float) -> None:
    event = threading.Event()
    while not event.wait(poll_s):
        if os.getppid() != parent or not pid_alive(driver_pid):
            _exit(driver_pid)


def _exit(driver_pid: int) -> None:
    log.warning("worker %d: the run's driver (pid %d) is gone, exiting", os.getpid(), driver_pid)
    os._exit(1)
