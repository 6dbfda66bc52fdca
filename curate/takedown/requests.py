"""Consent requests (DATASET/takedown.parquet) honoured at manifest time: matching rows never enter."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from curate import storage
from curate.errors import CurateError
from curate.urls import canonical_host, hosts_of

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Takedown:
    uids: pa.Array
    urls: pa.Array
    domains: tuple[str, ...]

    @classmethod
    def load(cls, path: str | None) -> Takedown | None:
        """The requests in `path` (takedown.parquet: kind uid|url|domain, value); None when there are none."""
        if not path or not storage.exists(path):
            return None
        try:
            table = storage.read_parquet(path, columns=["kind", "value"])
        except (OSError, pa.ArrowException, KeyError) as exc:
            raise CurateError(f"cannot read the takedown list {path}: {exc}") from exc
        rows = table.to_pylist()

        def pick(kind: str) -> list[str]:
            return [r["value"] for r in rows if r["kind"] == kind and r["value"]]

        log.info("honouring %d takedown requests from %s", len(rows), path)
        return cls(
            uids=pa.array(pick("uid"), pa.string()),
            urls=pa.array(pick("url"), pa.string()),
            domains=tuple(h for h in map(canonical_host, pick("domain")) if h),
        )

    def matches(self, uid: pa.Array, url: pa.Array) -> pa.Array:
        """Boolean mask of rows that a request names (by uid, exact url, or the url's domain/subdomain).

        The host is curate.urls' canonical one: the host the downloader would connect to."""
        hit = pc.or_(pc.is_in(uid, value_set=self.uids), pc.is_in(url, value_set=self.urls))
        if self.domains:
            host = hosts_of(url)
            on_domain = pc.is_in(host, value_set=pa.array(self.domains, pa.string()))
            for domain in self.domains:
                on_domain = pc.or_(on_domain, pc.ends_with(host, "." + domain))
            hit = pc.or_(hit, on_domain)
        return pc.fill_null(hit, False)
