"""Expand INPUT arguments (files, folders, globs, fsspec URLs) into sources with a known format."""

from __future__ import annotations

import gzip
import io
import logging
import zlib
from dataclasses import dataclass
from typing import BinaryIO

import fsspec

from curate import storage
from curate.errors import CurateError

FORMATS = ("txt", "csv", "tsv", "json", "jsonl", "parquet")
EXTENSIONS = {
    "txt": "txt",
    "text": "txt",
    "urls": "txt",
    "csv": "csv",
    "tsv": "tsv",
    "json": "json",
    "jsonl": "jsonl",
    "ndjson": "jsonl",
    "parquet": "parquet",
    "pq": "parquet",
}
GZIP_MAGIC = b"\x1f\x8b"
# Files that other tools write beside their data, named like URL lists but not URL lists: skipped when
# a folder or glob is expanded (a file named on its own is read as given).
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff", "avif")
log = logging.getLogger(__name__)
MAX_HELD_BYTES = 16 << 20  # a line longer than this is passed on in pieces (a minified one-line JSON array)
DAMAGE_ERRORS = (EOFError, OSError, zlib.error)


class WholeLines(io.RawIOBase):
    """Decompressed bytes that stop at the last whole line before damage (a truncated or corrupt .gz).

    A gzip stream fails only after the data before the damage, often in the first read of a small file;
    held back to whole lines, that data is still read, and the row cut in half by the damage is never
    taken for a good one. `error` says what stopped the stream; with `raise_at_end` the read after the
    last whole line raises it (line readers keep the rows read before, as for any read error).
    """

    def __init__(self, raw: gzip.GzipFile, raise_at_end: bool) -> None:
        super().__init__()
        self.raw, self.raise_at_end = raw, raise_at_end
        self.ready = memoryview(b"")
        self.held = bytearray()  # the line begun in the last piece, not yet passed on
        self.finished = False
        self.error: OSError | EOFError | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        if not self.ready:
            self._fill(max(len(b), 1 << 16))
        n = min(len(b), len(self.ready))
        b[:n] = self.ready[:n]
        self.ready = self.ready[n:]
        return n

    def _fill(self, size: int) -> None:
        while not self.ready and not self.finished:
            try:
                piece = self.raw.read1(size)  # one step: read() would drop what it had at the damage
            except DAMAGE_ERRORS as exc:
                self.finished = True
                self.error = exc if isinstance(exc, OSError | EOFError) else OSError(f"corrupt gzip: {exc}")
                break
            if not piece:
                self.finished = True
                self.ready, self.held = memoryview(bytes(self.held)), bytearray()
                break
            cut = piece.rfind(b"\n") + 1
            if not cut and len(self.held) + len(piece) <= MAX_HELD_BYTES:
                self.held += piece
                continue
            self.ready = memoryview(bytes(self.held + piece[:cut]) if cut else bytes(self.held + piece))
            self.held = bytearray(piece[cut:]) if cut else bytearray()
        if not self.ready and self.error is not None and self.raise_at_end:
            raise self.error

    def close(self) -> None:
        self.raw.close()
        super().close()


@dataclass(frozen=True)
class Source:
    """One input file: where it is, its format, and whether it is gzip-compressed."""

    fs: fsspec.AbstractFileSystem
    path: str  # path inside fs
    name: str  # as the user wrote it (URL scheme kept): used in every message
    fmt: str
    gzip: bool

    def open(self, *, raise_at_end: bool = True) -> BinaryIO:
        """A binary stream of the decompressed bytes; a damaged gzip stream ends at its last whole line."""
        raw = self.fs.open(self.path, "rb")
        if self.gzip:
            # the stdlib's reader: read1 hands out what it inflated before damage (isal's igzip does not)
            lines = WholeLines(gzip.GzipFile(fileobj=raw, mode="rb"), raise_at_end)
            return lines  # type: ignore[return-value]
        return raw

    def open_buffered(self) -> io.BufferedReader:
        return io.BufferedReader(self.open(), buffer_size=1 << 20)  # type: ignore[arg-type]


def format_of(name: str) -> str | None:
    """Format named by the extension (".gz" looked through), or None."""
    base = name.rpartition("/")[2].lower()
    base = base.removesuffix(".gz")
    return EXTENSIONS.get(base.rpartition(".")[2]) if "." in base else None


def resolve(inputs: list[str], fmt: str = "auto") -> list[Source]:
    """Sources in the order given (folders and globs sorted by name); errors name the input at fault."""
    if fmt != "auto" and fmt not in FORMATS:
        raise CurateError(f"unknown format {fmt!r}: use one of auto, {', '.join(FORMATS)}")
    if not inputs:
        raise CurateError("no input given: pass one or more files, folders, globs or URLs")
    sources: list[Source] = []
    for given in inputs:
        fs, inner = storage.url_to_fs(given)
        prefix = given[: len(given) - len(inner)] if given.endswith(inner) else ""
        if any(ch in inner for ch in "*?["):
            paths = sorted(p for p in fs.glob(inner) if fs.isfile(p))
            if not paths:
                raise CurateError(f"input {given!r}: the glob matches no file")
            picked = _supported(_without_sidecars(paths, given), fmt, given)
        elif fs.isdir(inner):
            paths = sorted(p for p in fs.find(inner) if not _hidden(p, inner))
            picked = _supported(_without_sidecars(paths, given), fmt, given)
        elif fs.exists(inner):
            picked = [inner]
        else:
            raise CurateError(f"input {given!r} does not exist")
        for path in picked:
            name = f"{prefix}{path}" if prefix and not path.startswith(prefix) else path
            sources.append(_source(fs, path, name, fmt))
    return sources


def _hidden(path: str, root: str) -> bool:
    rel = path[len(root) :].lstrip("/")
    return any(part.startswith((".", "_")) for part in rel.split("/"))


def sidecar_kind(path: str, image_stems: set[str]) -> str | None:
    """What tool's side file `path` is, or None for a file that may be a URL list."""
    base = path.rpartition("/")[2]
    if base.endswith("_stats.json"):
        return "img2dataset shard stats"
    if base.endswith(".stats.json"):
        return "curate shard stats"
    stem, _, ext = path.rpartition(".")
    if ext.lower() in ("txt", "json") and stem in image_stems:
        return "caption or metadata of an image (img2dataset's files format)"
    return None


def _without_sidecars(paths: list[str], given: str) -> list[str]:
    """`paths` less the side files of known tools; each one left out is named in the log."""
    image_stems = {p.rpartition(".")[0] for p in paths if p.rpartition(".")[2].lower() in IMAGE_EXTENSIONS}
    kept, skipped = [], []
    for path in paths:
        kind = sidecar_kind(path, image_stems)
        if kind is None:
            kept.append(path)
        else:
            skipped.append((path, kind))
    if skipped:
        log.warning(
            "input %r: skipped %d files that are not URL lists: %s",
            given,
            len(skipped),
            "; ".join(f"{path} ({kind})" for path, kind in skipped[:10])
            + ("; ..." if len(skipped) > 10 else ""),
        )
    return kept


def _supported(paths: list[str], fmt: str, given: str) -> list[str]:
    if fmt != "auto":
        return paths
    picked = [p for p in paths if format_of(p)]
    if not picked:
        raise CurateError(
            f"input {given!r} holds no file with a known extension "
            f"({', '.join(sorted(EXTENSIONS))}, optionally .gz); pass --format to read them anyway"
        )
    return picked


def _source(fs: fsspec.AbstractFileSystem, path: str, name: str, fmt: str) -> Source:
    if fmt == "auto":
        fmt_found = format_of(path)
        if fmt_found is None:
            raise CurateError(
                f"cannot tell the format of {name!r} from its extension; pass --format ({', '.join(FORMATS)})"
            )
        fmt = fmt_found
    with fs.open(path, "rb") as fh:
        compressed = fh.read(2) == GZIP_MAGIC
    return Source(fs=fs, path=path, name=name, fmt=fmt, gzip=compressed)
