"""The one rule for which host a URL names: the host the downloader connects to is the host that opt-outs,
takedowns, exports and SQL's `url_host` match.

Two parsers that disagree are a bypass: `http://host:80?a=@victim.com/` is fetched from `host`, so a
takedown that reads `victim.com` from it would purge the wrong rows. Every part of curate therefore asks
`url_host` (Python) or `url_host(url)` (SQL, `install_url_host`), and the SQL form is proven equal to the
Python one (tests/test_download_safety_hosts.py).

The rule: the URL is parsed as `urllib.parse.urlsplit` does (the parser the HTTP client uses); only
`scheme://` URLs with a host and a valid port name a host (the downloader fetches http and https only);
userinfo (`a@`) and the port are dropped; the host is lower-cased, trailing dots are removed (`victim.com.`
is `victim.com`) and a non-ASCII name is written in its IDNA ASCII form (`bücher.de` is
`xn--bcher-kva.de`), the form DNS is asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

import duckdb
import pyarrow as pa

ALLOWED_SCHEMES = ("http", "https")


@dataclass(frozen=True)
class Target:
    """What the downloader needs to request a URL: where to connect and what to ask for."""

    url: str
    scheme: str  # "http" or "https"
    host: str  # canonical_host of the URL's host: what DNS is asked and what consent lists match
    port: int
    path: str  # path and query, as sent in the request line

    @property
    def origin(self) -> str:
        """scheme://host:port, with IPv6 hosts in brackets (robots.txt lives at origin + /robots.txt)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def canonical_host(host: str | None) -> str | None:
    """Lower case, no trailing dots, IDNA ASCII form; None when nothing is left or IDNA refuses the name."""
    if not host:
        return None
    host = host.strip().lower().rstrip(".")
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii").lower().rstrip(".")
        except UnicodeError:
            return None
    return host or None


def _split(url: str | None) -> tuple[SplitResult, int | None] | None:
    """urlsplit of the stripped URL and its port; None when urlsplit refuses it (bad port, bad brackets)."""
    if not url or not isinstance(url, str):
        return None
    try:
        parts = urlsplit(url.strip())
        return parts, parts.port
    except ValueError:
        return None


def parse_target(url: str | None) -> Target | None:
    """The Target of an absolute http(s) URL with a host and a valid port, else None."""
    split = _split(url)
    if split is None:
        return None
    parts, port = split
    scheme = parts.scheme.lower()
    host = canonical_host(parts.hostname)
    if scheme not in ALLOWED_SCHEMES or host is None:
        return None
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(url.strip(), scheme, host, port or (443 if scheme == "https" else 80), path)


def url_host(url: str | None) -> str | None:
    """The canonical host of a `scheme://host...` URL (for http(s): the host the downloader connects to),
    or None when it names none."""
    split = _split(url)
    if split is None or not split[0].scheme:
        return None
    return canonical_host(split[0].hostname)


# SQL's url_host: a fast path for the common URL (http(s), userinfo of printable ASCII but space / ? # [ \\ ],
# a host of letters, digits, . _ -, a port of at most 4 digits), where one regular expression gives the same
# host as the rule above; every other URL is answered by the Python function itself (curate_url_host).
# COALESCE, not CASE: DuckDB evaluated the CASE form ten times slower.
_FAST_HOST = r"""(?i)^https?://(?:[!-"$-.0->@-Z^-~]*@)?([a-z0-9._-]+)(?::[0-9]{0,4})?(?:[/?#]|$)"""
_SQL = (
    "CREATE OR REPLACE MACRO url_host(u) AS coalesce("
    f"nullif(rtrim(lower(regexp_extract(u, '{_FAST_HOST}', 1)), '.'), ''), curate_url_host(u))",
)


def install_url_host(con: duckdb.DuckDBPyConnection) -> None:
    """Define `url_host(url)` and `canonical_host(name)` on a DuckDB connection."""
    for name, fn in (("curate_url_host", url_host), ("canonical_host", canonical_host)):
        try:
            con.create_function(
                name, fn, [duckdb.sqltype("VARCHAR")], duckdb.sqltype("VARCHAR"), null_handling="special"
            )
        except duckdb.NotImplementedException:  # already defined on this connection
            pass
    for statement in _SQL:
        con.execute(statement)


def hosts_of(urls: pa.Array | pa.ChunkedArray) -> pa.Array:
    """url_host of every URL in an Arrow column (null where none), by the SQL form (vectorized)."""
    from curate.inspect import duck  # duck's connections define url_host (it imports this module)

    con = duck.connect()
    try:
        con.register("urls", pa.table({"u": urls}))
        return con.sql("SELECT url_host(u) AS h FROM urls").to_arrow_table().column("h").combine_chunks()
    finally:
        duck.close(con)
