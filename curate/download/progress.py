"""Run-wide progress for a download: images/s, success rate, and a one-line diagnosis when most URLs fail.

Workers write their counts to small JSON files in a local folder (shard.py); a thread in the driver
sums them into one tqdm bar. It works the same for every worker process without any shared queue.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import Counter
from typing import TYPE_CHECKING

from tqdm import tqdm

if TYPE_CHECKING:
    from typing import Self  # Python 3.11+; annotations are not evaluated at run time

log = logging.getLogger(__name__)

DIAGNOSE_AFTER = 2000  # rows attempted before judging the success rate
LOW_SUCCESS = 0.10

_HINTS = {
    "dns": "failed DNS resolution: is this machine online?",
    "connect": "could not connect: is a firewall or proxy blocking outgoing connections?",
    "timeout": "timed out: the network is slow or the hosts are overloaded (see --total-timeout)",
    "private_address": (
        "point at addresses that are not public: name them with --allow-networks CIDR if intended"
    ),
    "host_unreachable": "were on hosts cut off after repeated failures: is the network reachable?",
    "robots_disallowed": "are disallowed by robots.txt for this user agent",
    "x_robots_tag": "were refused by an X-Robots-Tag header (noai, noindex, ...)",
    "opted_out": "are opted out (takedown.parquet or --opt-out)",
    "http_4xx": "answered HTTP 4xx: the URL list is probably stale (links rot quickly)",
    "http_5xx": "answered HTTP 5xx: the servers are failing",
    "http_429": "were rate-limited (HTTP 429): lower --workers/--threads or --max-connections-per-host",
    "invalid_url": "are not valid http(s) URLs: check --url-col",
    "missing_url": "have no URL: check --url-col",
    "not_an_image": "are not images: the URL column may point at web pages",
}


def diagnose(status: Counter | dict, errors: Counter | dict) -> str | None:
    """One line explaining a very low success rate, naming the dominant error class; else None."""
    attempted = sum(status.values())
    if attempted == 0 or status.get("success", 0) / attempted >= LOW_SUCCESS or not errors:
        return None
    cls, n = max(errors.items(), key=lambda kv: kv[1])
    hint = _HINTS.get(cls, f"failed with error class {cls}")
    return f"{100 * n / attempted:.0f}% of the first {attempted:,} URLs {hint}"


class ProgressMonitor:
    """Polls the workers' progress files and drives one bar; logs the diagnosis once."""

    def __init__(self, folder: str, total_rows: int, already: int, interval: float = 0.5) -> None:
        self.folder = folder
        self.total = total_rows
        self.already = already
        self.interval = interval
        self.diagnosis: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="curate-progress", daemon=True)
        self._start = time.monotonic()
        self._bar = tqdm(
            total=total_rows, desc="download", unit="img", dynamic_ncols=True, disable=None, initial=already
        )

    def __enter__(self) -> Self:
        os.makedirs(self.folder, exist_ok=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._poll(final=True)
        self._bar.close()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._poll(final=False)

    def _read(self) -> tuple[Counter, Counter]:
        status, errors = Counter(), Counter()
        try:
            names = [n for n in os.listdir(self.folder) if n.endswith(".json")]
        except FileNotFoundError:
            names = []
        for name in names:
            try:
                with open(os.path.join(self.folder, name)) as fh:
                    data = json.load(fh)
            except (OSError, ValueError):
                continue
            status.update(data.get("status", {}))
            errors.update(data.get("error_class", {}))
        return status, errors

    def _poll(self, final: bool) -> None:
        status, errors = self._read()
        done = sum(status.values())
        self._bar.n = min(self.total, done + self.already)
        elapsed = max(1e-6, time.monotonic() - self._start)
        ok = status.get("success", 0)
        self._bar.set_postfix_str(
            f"{ok / elapsed:.0f} ok/s, success {100 * ok / max(1, done):.1f}%", refresh=True
        )
        if self.diagnosis is None and (done >= DIAGNOSE_AFTER or (final and done)):
            line = diagnose(status, errors)
            if line:
                self.diagnosis = line
                log.warning(line)
            elif done >= DIAGNOSE_AFTER:
                self.diagnosis = ""  # judged healthy; do not judge again
