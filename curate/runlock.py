"""The lock file of a local dataset, held by every process of the run that writes to it.

A run is its driver and its worker processes. Each of them holds a shared `flock` on the lock file and
writes its pid into it, so after a `kill -9` of the driver the lock stays taken for as long as any
worker still lives. A later run takes a lock over only when it can get the exclusive `flock` (no
process of the old run holds the file open) and none of the pids recorded in it is alive.

The lock file's first line is `host:pid:stage` of the driver; each worker adds `worker host:pid`.
Workers find the file through the CURATE_RUN_LOCK environment variable, which the driver sets while it
holds the lock and the local executor hands to every worker it starts.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import sys

log = logging.getLogger(__name__)

ENV_VAR = "CURATE_RUN_LOCK"
_JOINED: list[int] = []  # a worker's descriptor on its run's lock, open (so held) until the process ends


class LockHeld(Exception):
    """The lock belongs to a run that is still alive; the message names its processes."""


def acquire(path: str, holder: str) -> int:
    """Create the lock at `path` for this process (taking over a stale one); return its descriptor.

    Raises LockHeld when a process of the run that holds it is still alive.
    """
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    # Written and locked under a private name first, then linked into place: whoever sees the lock
    # file sees it complete and held, never an empty file it could mistake for a stale one.
    tmp = os.path.join(directory, f".lock-{os.getpid()}-{os.urandom(4).hex()}")
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        os.write(fd, f"{holder}\n".encode())
        while True:
            try:
                os.link(tmp, path)
                return fd
            except FileExistsError:
                _remove_if_stale(path)
    except BaseException:
        os.close(fd)
        raise
    finally:
        os.unlink(tmp)


def release(path: str, fd: int) -> None:
    """Remove the lock this process created (only if the file at `path` is still that lock)."""
    try:
        if _same_file(fd, path):
            os.unlink(path)
    finally:
        os.close(fd)


def join(path: str | None) -> None:
    """In a worker process: hold the lock at `path` (the driver's CURATE_RUN_LOCK, None when the driver
    holds none), and record this process in it."""
    if not path or _JOINED:
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    except OSError:
        return  # no lock (the run is over, or it is not a local dataset): nothing to join
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)  # being taken over: the driver is gone, and this worker follows it
        return
    os.write(fd, f"worker {socket.gethostname()}:{os.getpid()}\n".encode())
    _JOINED.append(fd)


def holder_text(text: str) -> str:
    """One line for messages: the driver, then how many workers recorded themselves."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return "unknown"
    workers = [line.split(" ", 1)[1] for line in lines[1:] if line.startswith("worker ")]
    return lines[0] + (f", workers {', '.join(workers)}" if workers else "")


def _remove_if_stale(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return  # removed meanwhile: try to create it again
    try:
        text = os.read(fd, 1 << 16).decode(errors="replace")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockHeld(holder_text(text)) from None
        if not _same_file(fd, path):
            return  # replaced while we looked: look again
        alive = _alive_processes(text)
        if alive:
            raise LockHeld(f"{holder_text(text)}; still running: {', '.join(alive)}")
        log.warning("removing stale lock %s of %s: no process of that run is alive", path, holder_text(text))
        os.unlink(path)  # safe: every remover holds this file's exclusive flock first
    finally:
        os.close(fd)


def _same_file(fd: int, path: str) -> bool:
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (mine.st_dev, mine.st_ino) == (now.st_dev, now.st_ino)


def _alive_processes(text: str) -> list[str]:
    """The recorded `host:pid`s that may still run: live pids of this host, and any of another host
    (whose processes cannot be checked from here)."""
    alive = []
    for line in text.splitlines():
        host, _, rest = line.strip().removeprefix("worker ").partition(":")
        pid_text = rest.partition(":")[0]
        if host and pid_text.isdigit() and (host != socket.gethostname() or pid_alive(int(pid_text))):
            alive.append(f"{host}:{pid_text}")
    return alive


def pid_alive(pid: int) -> bool:
    """Whether process `pid` of this host still runs (a zombie has exited)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if sys.platform.startswith("linux"):
        try:
            with open(f"/proc/{pid}/stat") as fh:
                return fh.read().rpartition(")")[2].split()[0] != "Z"
        except OSError:
            return False
    return True
