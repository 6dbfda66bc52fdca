"""A dataset's hashed samples as fixed-width columns: what the global stages (dedup, overlap) hold.

Each shard's successful rows are joined to its hash signals one file at a time (DuckDB), so the join
never holds the dataset at once; per sample only the pHash, the 8x8 thumbnail, the pixel count and
128-bit digests of the sha256 and URL strings are kept, plus the uid: about 280 bytes, never the
strings or image bytes.
"""

from __future__ import annotations

import logging

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from curate import storage
from curate.dataset import Dataset
from curate.dedup import mih, simhash
from curate.errors import CurateError
from curate.inspect import duck

log = logging.getLogger(__name__)


def hashed_shards(ds: Dataset) -> dict[str, tuple[str, str]]:
    """{shard key: (shard path, hash signal path)} of the shards that have hash signals, in key order.

    Shards without signals yet are left out with a warning that names the command that finishes them.
    """
    hash_files = _keyed(
        storage.list_files(ds.signals_dir("hashes"), ".parquet"),
        f"hash signals in {ds.signals_dir('hashes')}",
        f"curate annotate {ds.root}",
    )
    shard_files = _keyed(
        ds.shard_paths(), f"download shards in {ds.shards_dir}", f"curate download ... {ds.root}"
    )
    hashed = sorted(set(shard_files) & set(hash_files))
    if not hashed:
        raise CurateError(
            f"no shard of {ds.root} has hash signals (the signal files are named for other "
            f"shards). Run `curate annotate {ds.root}` first."
        )
    unhashed = sorted(set(shard_files) - set(hash_files))
    if unhashed:
        log.warning(
            "%d shard(s) have no hash signals yet (first: %s): their samples are left out; run "
            "`curate annotate %s` to finish them",
            len(unhashed),
            unhashed[0],
            ds.root,
        )
    return {key: (shard_files[key], hash_files[key]) for key in hashed}


def load_nodes(ds: Dataset, against: list[str]) -> dict:
    """One row per hashed sample: this dataset's first (sorted by uid), then those of the `against`
    datasets (by name, then uid; `source` is 0 for this dataset, i for against_names[i]).

    Keys: uid (Arrow strings), source, phash (uint64), phash_valid, pixels, sha / url ((N, 2) uint64
    digests) with sha_valid / url_valid, thumbs ((N, 192) uint8, or None when any file lacks them).
    """
    con = duck.connect()
    shards = hashed_shards(ds)
    queries = [
        (0, _own_query(con, shard, hashes), f"hash signals of shard {key}")
        for key, (shard, hashes) in shards.items()
    ]
    names = sorted(set(against))
    for code, other in enumerate(names, start=1):
        files = _keyed(
            storage.list_files(Dataset(other).signals_dir("hashes"), ".parquet"),
            f"hash signals in --against dataset {other}",
            f"curate annotate {other}",
        )
        queries += [(code, _against_query(con, path), path) for path in files.values()]
    parts = [
        _node_part(con, code, query, what)
        for code, query, what in tqdm(
            queries, desc="load hash signals", unit="file", disable=len(queries) < 20
        )
    ]
    with_thumbs = all(part["thumbs"] is not None for part in parts)
    source = np.concatenate([part["source"] for part in parts])
    uid = pa.chunked_array([part.pop("uid") for part in parts], pa.string())
    order = pc.sort_indices(
        pa.table({"source": source, "uid": uid}), [("source", "ascending"), ("uid", "ascending")]
    ).to_numpy()
    nodes = {"uid": uid.take(order), "against_names": ["", *names]}
    position = np.empty_like(order)
    position[order] = np.arange(len(order))
    ends = np.cumsum([len(part["source"]) for part in parts])
    for field in (
        "source",
        "phash",
        "phash_valid",
        "pixels",
        "sha",
        "sha_valid",
        "url",
        "url_valid",
        "thumbs",
    ):
        if field == "thumbs" and not with_thumbs:
            nodes[field] = None
            continue
        # each file's rows go straight to their sorted places: one copy of the column, not three
        first = parts[0][field]
        column = np.empty((len(order), *first.shape[1:]), first.dtype)
        for part, end in zip(parts, ends, strict=False):
            values = part.pop(field)
            column[position[end - len(values) : end]] = values
        nodes[field] = column
    return nodes


def _keyed(paths: list[str], what: str, fix: str) -> dict[str, str]:
    """{shard key: path}; a clear error naming `fix` when there are none."""
    if not paths:
        raise CurateError(f"no {what} found. Run `{fix}` first.")
    return {Dataset.shard_key(p): p for p in paths}


def _file(con, path: str) -> str:
    return duck.source(con, [path], path, "")


def _own_query(con, shard_path: str, hash_path: str) -> str:
    hashes, shards = _file(con, hash_path), _file(con, shard_path)
    thumb = ", h.thumb" if _has_column(con, hashes, "thumb") else ""
    return f"""SELECT h.uid, h.phash{thumb}, {_digest("h.sha256", "sha")}, {_digest("s.url", "url")},
                      coalesce(s.width, 0)::BIGINT * coalesce(s.height, 0) AS pixels
               FROM {hashes} h JOIN (SELECT uid, url, width, height FROM {shards} WHERE status = 'success') s
               USING (uid)"""


def _against_query(con, hash_path: str) -> str:
    src = _file(con, hash_path)
    thumb = ", thumb" if _has_column(con, src, "thumb") else ""
    return f"""SELECT uid, phash{thumb}, {_digest("sha256", "sha")}, {_digest("NULL::VARCHAR", "url")},
                      0::BIGINT AS pixels FROM {src}"""


def _digest(expr: str, name: str) -> str:
    """The string's 128-bit MD5: equal strings, equal digests; two distinct strings of a 10M-sample
    dataset share one with probability about 1e-25, so digests stand for the strings."""
    return f"md5_number({expr}) AS {name}"


def _has_column(con, src: str, column: str) -> bool:
    return column in con.sql(f"SELECT * FROM {src} LIMIT 0").columns


def _node_part(con, source: int, query: str, what: str) -> dict:
    """One file's rows as fixed-width numpy columns (and its uids as Arrow strings)."""
    t = con.sql(query).to_arrow_table()
    phash = t.column("phash")
    part = {
        "uid": t.column("uid").combine_chunks(),
        "source": np.full(t.num_rows, source, np.int16),
        "phash": mih.as_uint64(phash.fill_null(0).to_numpy().astype(np.int64)),
        "phash_valid": phash.is_valid().to_numpy(zero_copy_only=False),
        "pixels": t.column("pixels").to_numpy().astype(np.int64),
        "thumbs": simhash.as_matrix(t.column("thumb")) if "thumb" in t.column_names else None,
    }
    for name in ("sha", "url"):
        part[name], part[f"{name}_valid"] = _digest_words(t.column(name).combine_chunks())
    log.debug("%d hashed samples from %s", t.num_rows, what)
    return part


def _digest_words(digest: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(N, 2) uint64 words of 128-bit digests (DuckDB hands HUGEINT over as 16-byte decimals), valid mask."""
    words = np.frombuffer(digest.buffers()[1], np.uint64)[
        2 * digest.offset : 2 * (digest.offset + len(digest))
    ]
    valid = digest.is_valid().to_numpy(zero_copy_only=False)
    return np.where(valid[:, None], words.reshape(-1, 2), np.uint64(0)), valid
