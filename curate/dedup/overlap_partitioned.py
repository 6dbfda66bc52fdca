"""`curate overlap --executor ray`: the matches of `curate overlap`, found by tasks that each hold one shard
or one of P uid ranges of the training pool, never the pool (docs/SCALE.md).

Evaluation sets are small: the driver hashes them as the single path does and writes each one's index
(pHashes, thumbnails, SimHash codes) and the caption keys to match into the work folder, where every task
reads them. The pool is big, so it is partitioned (curate.dedup.shuffle):

  load   shard -> its hashed rows with their SimHash codes, scattered by uid range; the shard's caption
         matches against every benchmark
  rank   uid range -> sorted by uid: each row's place in the single path's order, among all rows and among
         the searched ones (not flat); the rows the LSH plan is measured on
  match  uid range -> each benchmark's pairs in the range: the single path's LSH tables (same plan, same
         bucket bits) or, without thumbnails, multi-index hashing; then the rule

Whether a pair is a candidate depends on its two rows alone (they share a bucket key in some table, or
lie within the pHash radius), so the ranges find the single path's pairs; the driver orders them as the
single path does (eval image, then training uid) and `curate.dedup.overlap` writes the same files.
The work folder (signals/overlap/_work/<fingerprint>) is removed once the matches are gathered.
"""

from __future__ import annotations

import hashlib
import json
import logging

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curate import storage
from curate.dataset import Dataset
from curate.dedup import hashing, mih, nodes, shuffle, simhash
from curate.dedup.overlap import caption_join, readable, wanted_captions
from curate.dedup.partitioned import (
    DEFAULT_MEMORY_BUDGET,
    _open,
    _ray_session,
    _Run,
    _splitters,
    _thumbs,
    partitions_for,
)
from curate.errors import CurateError
from curate.inspect import duck

log = logging.getLogger(__name__)

_WORDS = [f"w{i}" for i in range(simhash.WORDS)]


def find_matches(
    ds: Dataset,
    evals: dict[str, dict],
    k: int,
    sim: float,
    *,
    partitions: int | None = None,
    memory_budget: int | None = None,
    executor: str = "ray",
    workers: int | None = None,
    retries: int = 2,
) -> tuple[dict[str, tuple], dict]:
    """{benchmark: (eval row, training uids, distances, caption pairs)} as `curate.dedup.overlap`'s single
    path finds them (hashed eval sets from its `_hash_eval_set`), and a summary of the run."""
    hashed = nodes.hashed_shards(ds)
    shards = {Dataset.shard_key(p): p for p in ds.shard_paths()}
    with_thumbs = all("thumb" in pq.read_schema(*_open(h)).names for _, h in hashed.values())
    samples = sum(pq.read_metadata(*_open(h)).num_rows for _, h in hashed.values())
    parts = partitions or partitions_for(samples, memory_budget or DEFAULT_MEMORY_BUDGET)
    if parts < 1:
        raise CurateError(f"--partitions must be at least 1, got {parts}")
    con = duck.connect()
    wanted = pa.concat_tables([_wanted(con, name, ev) for name, ev in evals.items()])
    work = storage.join(
        ds.signals_dir("overlap"), "_work", _fingerprint(shards, hashed, evals, wanted, parts, k, sim)
    )
    for name, ev in evals.items():
        storage.write_parquet_atomic(_eval_index(ev), shuffle.path(work, "evals", 0, name), compression="lz4")
    storage.write_parquet_atomic(wanted, shuffle.path(work, "evals", 0, "captions"), compression="lz4")
    log.info("overlap: %d hashed samples in %d partitions (work files in %s)", samples, parts, work)
    run = _Run(work, parts, k, sim, {"executor": executor, "workers": workers, "retries": retries}, "overlap")
    with _ray_session(executor, workers):
        found = _search(run, shards, hashed, evals, with_thumbs, wanted.num_rows > 0)
    fs, inner = storage.url_to_fs(work)
    fs.rm(inner, recursive=True)
    return found, {
        "count": parts,
        "peak_task_rss_mb": max(run.peaks.values()),
        "peak_task_rss_mb_by_step": run.peaks,
        "seconds_by_step": run.seconds,
        "cpu_seconds_by_step": run.cpu,
        "resumed_tasks": run.resumed,
    }


def _wanted(con, name: str, ev: dict) -> pa.Table:
    t = wanted_captions(con, ev)
    return t.add_column(0, "benchmark", pa.array([name] * t.num_rows, pa.string()))


def _search(
    run: _Run,
    shards: dict[str, str],
    hashed: dict[str, tuple[str, str]],
    evals: dict[str, dict],
    with_thumbs: bool,
    captions: bool,
) -> dict[str, tuple]:
    P, R, work = run.parts, range(run.parts), run.work
    splitters = _splitters([h for _, h in hashed.values()], P)
    loaded = run.step(
        "load",
        load,
        {
            key: {
                "key": key,
                "shard": shard,
                "hashes": hashed[key][1] if key in hashed else None,
                "splitters": splitters,
                "thumbs": with_thumbs,
                "captions": captions,
            }
            for key, shard in shards.items()
        },
    )
    counts = np.sum([s["per_range"] for s in loaded], axis=0).astype(np.int64)
    searched = np.sum([s["searched_per_range"] for s in loaded], axis=0).astype(np.int64)
    starts, s_starts = (np.concatenate([[0], np.cumsum(c)[:-1]]).astype(np.int64) for c in (counts, searched))
    n_searched = int(searched.sum())
    sample = simhash.sample_rows(n_searched) if with_thumbs else np.empty(0, np.int64)
    run.step(
        "rank",
        rank,
        {
            j: {
                "range": j,
                "start": int(starts[j]),
                "s_start": int(s_starts[j]),
                "sample": sample[(sample >= s_starts[j]) & (sample < s_starts[j] + searched[j])],
                "shards": sorted(hashed),
            }
            for j in R
        },
    )
    lsh = with_thumbs and any(ev["thumbs"] is not None for ev in evals.values())
    plan = _plan(work, P, sample, run.sim, run.k, n_searched) if lsh and n_searched else None
    run.step(
        "match",
        match,
        {
            j: {
                "range": j,
                "benchmarks": sorted(evals),
                "lsh": lsh,
                "plan": plan,
                "idx_bits": max(1, int(n_searched - 1).bit_length()),
            }
            for j in R
        },
    )
    image = pa.concat_tables([storage.read_parquet(shuffle.path(work, "matches", 0, j)) for j in R])
    caption = (
        pa.concat_tables([storage.read_parquet(shuffle.path(work, "captions", 0, key)) for key in shards])
        if captions
        else None
    )
    found = {}
    for name in evals:
        t = image.filter(pc.equal(image.column("benchmark"), name))
        t = t.take(pc.sort_indices(t, [("q", "ascending"), ("gidx", "ascending")]))
        pairs: list[tuple[str, str]] = []
        if caption is not None:
            c = caption.filter(pc.equal(caption.column("benchmark"), name))
            c = c.take(pc.sort_indices(c, [("uid", "ascending"), ("eval_id", "ascending")]))
            pairs = list(zip(c.column("uid").to_pylist(), c.column("eval_id").to_pylist(), strict=True))
        found[name] = (
            t.column("q").to_numpy(),
            t.column("uid").to_pylist(),
            t.column("distance").to_numpy(),
            pairs,
        )
    return found


def load(job) -> dict:
    """A shard's rows with a valid pHash (and SimHash codes of the searched ones), scattered by uid
    range; its caption matches."""
    p = job.payload
    parts = p["parts"]
    con = duck.connect()
    per_range = searched_per_range = np.zeros(parts, np.int64)
    if p["hashes"]:
        part = nodes._node_part(con, 0, nodes._own_query(con, p["shard"], p["hashes"]), p["hashes"])
        keep = np.flatnonzero(part["phash_valid"])
        cols = {"uid": part["uid"].take(pa.array(keep)), "phash": part["phash"][keep]}
        uids = cols["uid"].to_numpy(zero_copy_only=False).astype(str)
        dest = np.searchsorted(np.asarray(p["splitters"], dtype=str), uids, side="right")
        if p["thumbs"]:
            thumbs = part["thumbs"][keep]
            cols.update(_codes(thumbs), thumb=_thumbs(thumbs))
            searched_per_range = np.bincount(dest[cols["searched"]], minlength=parts)
        per_range = shuffle.scatter(pa.table(cols), dest, parts, p["work"], "load", p["key"])
    if p["captions"]:
        wanted = storage.read_parquet(shuffle.path(p["work"], "evals", 0, "captions"))
        shard = duck.source(con, [p["shard"]], p["shard"], "")
        storage.write_parquet_atomic(
            caption_join(con, shard, wanted),
            shuffle.path(p["work"], "captions", 0, p["key"]),
            compression="lz4",
        )
    return {"per_range": per_range.tolist(), "searched_per_range": searched_per_range.tolist()}


def rank(job) -> dict:
    """Sort a uid range (stable: equal uids keep shard order, as in the single path) and number it; the
    sampled searched rows of the plan."""
    p = job.payload
    t = shuffle.gather(p["work"], "load", p["shards"], p["range"])
    t = t.take(pc.sort_indices(t, [("uid", "ascending")]))
    t = t.append_column("gidx", pa.array(np.arange(p["start"], p["start"] + t.num_rows, dtype=np.int64)))
    storage.write_parquet_atomic(t, shuffle.path(p["work"], "index", 0, p["range"]), compression="lz4")
    if "searched" in t.column_names:
        rows = np.flatnonzero(t.column("searched").to_numpy(zero_copy_only=False))[p["sample"] - p["s_start"]]
        picked = t.select(["phash", *_WORDS]).take(pa.array(rows, pa.int64()))
        storage.write_parquet_atomic(
            picked.append_column("pos", pa.array(p["sample"], pa.int64())),
            shuffle.path(p["work"], "sample", 0, p["range"]),
        )
    return {"rows": t.num_rows}


def match(job) -> dict:
    """Every benchmark's near-duplicate pairs with this range's rows, as `near.cross_near` finds them."""
    p = job.payload
    t = storage.read_parquet(shuffle.path(p["work"], "index", 0, p["range"]))
    h_hash = t.column("phash").to_numpy()
    h_thumbs = simhash.as_matrix(t.column("thumb")) if "thumb" in t.column_names else None
    out = []
    for name in p["benchmarks"]:
        e = storage.read_parquet(shuffle.path(p["work"], "evals", 0, name))
        q_hash = e.column("phash").to_numpy()
        if p["lsh"] and "thumb" in e.column_names:  # as near.cross_near: thumbnails on both sides
            qpos = np.flatnonzero(e.column("searched").to_numpy(zero_copy_only=False))
            hpos = np.flatnonzero(t.column("searched").to_numpy(zero_copy_only=False))
            ca, cb = (
                simhash.cross_candidates(
                    _matrix(e)[qpos],
                    _matrix(t)[hpos],
                    p["plan"],
                    workers=1,
                    q_hashes=mih.as_uint64(q_hash[qpos]),
                    hashes=mih.as_uint64(h_hash[hpos]),
                    radius=p["k"],
                    idx_bits=p["idx_bits"],
                )
                if p["plan"] is not None  # None: no training sample is searched
                else (np.empty(0, np.int64), np.empty(0, np.int64))
            )
            qi, hj = qpos[ca], hpos[cb]
            q_thumbs = simhash.as_matrix(e.column("thumb"))
            ok, dist = hashing.near(q_hash, h_hash, q_thumbs, h_thumbs, qi, hj, p["k"], p["sim"])
            qi, hj, dist = qi[ok], hj[ok], dist[ok]
        else:
            qi, hj, dist = mih.cross_pairs(q_hash, h_hash, p["k"], workers=1)
        out.append(
            pa.table(
                {
                    "benchmark": pa.array([name] * len(qi), pa.string()),
                    "q": pa.array(qi, pa.int64()),
                    "gidx": t.column("gidx").take(pa.array(hj, pa.int64())),
                    "uid": t.column("uid").take(pa.array(hj, pa.int64())),
                    "distance": pa.array(dist.astype(np.int16)),
                }
            )
        )
    table = pa.concat_tables(out)
    storage.write_parquet_atomic(table, shuffle.path(p["work"], "matches", 0, p["range"]), compression="lz4")
    return {"pairs": table.num_rows}


def _codes(thumbs: np.ndarray) -> dict[str, np.ndarray]:
    """`searched` (not flat: the single path's search set) and the SimHash words, zero for the others."""
    searched = simhash.informative(thumbs)
    codes = np.zeros((len(thumbs), simhash.WORDS), np.uint64)
    codes[searched] = simhash.simhash(thumbs, np.flatnonzero(searched))
    return {"searched": searched, **{w: codes[:, i] for i, w in enumerate(_WORDS)}}


def _matrix(t: pa.Table) -> np.ndarray:
    return np.column_stack([t.column(w).to_numpy() for w in _WORDS])


def _eval_index(ev: dict) -> pa.Table:
    """The readable eval images: pHash, and with thumbnails their SimHash codes (the queries)."""
    rows = np.flatnonzero(readable(ev))
    cols = {"phash": pa.array(ev["hashes"][rows], pa.int64())}
    if ev["thumbs"] is not None:
        thumbs = ev["thumbs"][rows]
        cols.update(_codes(thumbs), thumb=_thumbs(thumbs))
    return pa.table(cols)


def _plan(work: str, parts: int, sample: np.ndarray, sim: float, k: int, total: int) -> simhash.LshPlan:
    """The single path's plan: measured on the same rows of the search set (uid order)."""
    t = pa.concat_tables([storage.read_parquet(shuffle.path(work, "sample", 0, j)) for j in range(parts)])
    pos = t.column("pos").to_numpy()
    order = np.argsort(pos)
    t = t.take(pa.array(order[np.searchsorted(pos[order], sample)]))
    return simhash.plan(_matrix(t), sim, hashes=t.column("phash").to_numpy(), radius=k, total=total)


def _fingerprint(
    shards: dict[str, str],
    hashed: dict[str, tuple[str, str]],
    evals: dict[str, dict],
    wanted: pa.Table,
    parts: int,
    k: int,
    sim: float,
) -> str:
    """Names the work folder: a rerun on the same inputs and settings resumes, anything else starts anew."""
    digest = hashlib.sha256()
    sizes = []
    for key, shard in sorted(shards.items()):
        files = [shard, *(hashed[key][1:] if key in hashed else ())]
        sizes.append([key, *(storage.url_to_fs(f)[0].size(storage.url_to_fs(f)[1]) for f in files)])
    digest.update(json.dumps({"parts": parts, "k": k, "sim": sim, "shards": sizes}).encode())
    for name, ev in sorted(evals.items()):
        digest.update(name.encode())
        digest.update(json.dumps([ev["ids"], ev["errors"]]).encode())
        digest.update(ev["hashes"].tobytes())
        digest.update(b"" if ev["thumbs"] is None else ev["thumbs"].tobytes())
    digest.update(json.dumps(wanted.to_pydict()).encode())
    return digest.hexdigest()[:16]
