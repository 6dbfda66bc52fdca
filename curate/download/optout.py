"""Takedowns and opt-outs, checked before any request is made for a row and again for every redirect hop.

Sources: DATASET/takedown.parquet (kind uid|url|domain, value) and --opt-out files (one domain or URL
prefix a line, `#` comments). A domain covers its subdomains. Hosts are compared in their canonical form
(curate.urls: case, trailing dots, IDNA and userinfo do not matter), the host the downloader connects to.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from curate import storage
from curate.errors import CurateError
from curate.urls import canonical_host, parse_target

log = logging.getLogger(__name__)


@dataclass
class OptOut:
    uids: set[str] = field(default_factory=set)
    urls: set[str] = field(default_factory=set)
    domains: set[str] = field(default_factory=set)
    prefixes: dict[str, list[tuple[str, str]]] = field(
        default_factory=dict
    )  # host -> (path prefix, as given)

    def __len__(self) -> int:
        return len(self.uids) + len(self.urls) + len(self.domains) + sum(map(len, self.prefixes.values()))

    def add_domain(self, value: str) -> None:
        host = canonical_host(value.strip().lstrip("*").lstrip("."))
        if host:
            self.domains.add(host)

    def add_prefix(self, value: str) -> None:
        """A URL prefix covers its host (canonical, any scheme or port) and the paths that start like it."""
        target = parse_target(value)
        if target is None:
            log.warning("opt-out list: ignoring %r (not an http(s) URL with a host)", value[:200])
            return
        self.prefixes.setdefault(target.host, []).append((target.path, value))

    def reason(self, uid: str, url: str | None) -> str | None:
        """Why this row is opted out, or None."""
        if uid in self.uids:
            return "uid is in takedown.parquet"
        if not url:
            return None
        if url in self.urls:
            return "url is in takedown.parquet"
        target = parse_target(url)
        if target is None:
            return None
        host = target.host
        if self.domains:
            labels = host.split(".")
            for i in range(len(labels)):
                if ".".join(labels[i:]) in self.domains:
                    return f"domain {'.'.join(labels[i:])} opted out"
        for path, prefix in self.prefixes.get(host, ()):
            if target.path.startswith(path):
                return f"URL prefix {prefix} opted out"
        return None


def load_optout(takedown_path: str | None, optout_files: tuple[str, ...]) -> OptOut:
    out = OptOut()
    if takedown_path and storage.exists(takedown_path):
        table = storage.read_parquet(takedown_path, columns=["kind", "value"])
        kinds, values = table.column("kind").to_pylist(), table.column("value").to_pylist()
        for kind, value in zip(kinds, values, strict=True):
            if not value:
                continue
            if kind == "uid":
                out.uids.add(value)
            elif kind == "url":
                out.urls.add(value)
            elif kind == "domain":
                out.add_domain(value)
            else:
                log.warning("takedown.parquet: ignoring unknown kind %r (expected uid, url or domain)", kind)
    for path in optout_files:
        if not storage.exists(path):
            raise CurateError(
                f"opt-out file {path} does not exist: pass a text file with one domain or URL prefix a line"
            )
        fs, inner = storage.url_to_fs(path)
        with fs.open(inner, "rb") as fh:
            text = fh.read().decode("utf-8", "replace")
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            if line.lower().startswith(("http://", "https://")):
                out.add_prefix(line)
            else:
                out.add_domain(line)
    return out
