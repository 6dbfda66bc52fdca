"""Expand crawl INPUT arguments into archive files: paths, folders, globs, fsspec URLs, CC listings.

A Common Crawl listing (`warc.paths.gz`, `wat.paths.gz`, or any `*.paths[.gz]`) names one archive per
line, relative to a base URL (`--prefix`, default https://data.commoncrawl.org/). `limit` keeps the first
N archive files of the whole expanded list. Listed files are not checked one by one up front (a snapshot
lists 90,000): a missing one fails its own job, which the run summary reports.
"""

from __future__ import annotations

import gzip

from curate import storage
from curate.errors import CurateError

CC_PREFIX = "https://data.commoncrawl.org/"
ARCHIVE_SUFFIXES = (".warc.gz", ".warc", ".wat.gz", ".wat")
LISTING_SUFFIXES = (".paths.gz", ".paths")


def is_listing(name: str) -> bool:
    return name.lower().endswith(LISTING_SUFFIXES)


def expand_inputs(inputs: list[str], *, prefix: str | None = None, limit: int | None = None) -> list[str]:
    """Archive file paths/URLs in the order given (folders and globs sorted by name)."""
    if not inputs:
        raise CurateError(
            "no input given: pass WARC/WAT files, folders, globs, URLs or a warc.paths.gz listing"
        )
    if limit is not None and limit < 1:
        raise CurateError(f"--limit must be at least 1, not {limit}")
    files: list[str] = []
    for given in inputs:
        fs, inner = storage.url_to_fs(given)
        scheme = given[: len(given) - len(inner)] if given.endswith(inner) else ""
        if any(ch in inner for ch in "*?["):
            found = sorted(p for p in fs.glob(inner) if fs.isfile(p))
            if not found:
                raise CurateError(f"input {given!r}: the glob matches no file")
            files += [_with_scheme(scheme, p) for p in found]
        elif is_listing(inner):
            if not fs.exists(inner):
                raise CurateError(f"listing {given!r} does not exist")
            files += read_listing(given, prefix or CC_PREFIX)
        elif fs.isdir(inner):
            found = sorted(p for p in fs.find(inner) if p.lower().endswith(ARCHIVE_SUFFIXES))
            if not found:
                raise CurateError(f"folder {given!r} holds no archive ({', '.join(ARCHIVE_SUFFIXES)})")
            files += [_with_scheme(scheme, p) for p in found]
        elif fs.exists(inner):
            files.append(given)
        else:
            raise CurateError(f"input {given!r} does not exist")
        if limit is not None and len(files) >= limit:
            break
    return files[:limit] if limit is not None else files


def read_listing(listing: str, prefix: str) -> list[str]:
    """The archive URLs a listing names: prefix + each non-empty line."""
    fs, inner = storage.url_to_fs(listing)
    with fs.open(inner, "rb") as fh:
        data = fh.read()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise CurateError(f"listing {listing!r} is not a readable gzip file ({exc})") from None
    base = prefix if prefix.endswith("/") else prefix + "/"
    lines = [line.strip() for line in data.decode("utf-8", "replace").splitlines()]
    urls = [base + line.lstrip("/") for line in lines if line and not line.startswith("#")]
    if not urls:
        raise CurateError(f"listing {listing!r} names no file")
    return urls


def _with_scheme(scheme: str, path: str) -> str:
    return f"{scheme}{path}" if scheme and not path.startswith(scheme) else path
