"""`curate overlap`: which training samples near-duplicate an evaluation image (contamination).

Evaluation images are hashed with the annotate stage's function and matched to training samples by
its near-duplicate rule (pHash distance and thumbnail correlation; curate.dedup.near, never
all-pairs); training samples are held as curate.dedup.nodes loads them (about 280 bytes each). For
captioned benchmarks, training captions equal to an evaluation caption after normalization (case,
punctuation, spaces; at least MIN_CAPTION_WORDS words so that "image" matches nothing) are flagged
too, by one DuckDB join streamed over the shards: no training caption becomes a Python string.
Outputs per benchmark NAME:

  signals/overlap/NAME.parquet       uid, benchmark, eval_id, distance, match_kind (image | caption)
  signals/overlap/NAME.eval.parquet  eval_id, label, overlapping, error: for All / Clean / Overlap evals
  signals/overlap/.curate/summary.json the CLIP-paper-style table, one entry per benchmark
"""

from __future__ import annotations

import logging
import re
import time

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from curate import storage
from curate.dataset import Dataset, sidecar
from curate.dedup import evalsets, simhash
from curate.dedup.hashing import default_max_distance, default_similarity, hash_eval_images
from curate.dedup.near import cross_near
from curate.dedup.nodes import load_nodes
from curate.errors import CurateError
from curate.inspect import duck
from curate.schema import EVAL_SCHEMA, MATCHES_SCHEMA

log = logging.getLogger(__name__)

MIN_CAPTION_WORDS = 3
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


# The caption-match key, as SQL: lower case, every run of characters that are not letters, digits,
# combining marks or '_' to one space, trimmed. Training and evaluation captions both go through it.
_CAPTION_KEY = r"trim(regexp_replace(lower({}), '[^\p{{L}}\p{{N}}\p{{M}}_]+', ' ', 'g'))"


def caption_keys(con: duckdb.DuckDBPyConnection, captions: list[str | None]) -> list[str]:
    """The match key of each caption ('' for None)."""
    con.register("eval_captions", pa.table({"caption": pa.array(captions, pa.string())}))
    keys = con.execute(f"SELECT {_CAPTION_KEY.format('caption')} FROM eval_captions").fetchall()
    return [key or "" for (key,) in keys]


def overlap(
    dataset: str,
    benchmarks: dict[str, str],
    *,
    max_distance: int | None = None,
    workers: int = 2,
    executor: str = "local",
    partitions: int | None = None,
    memory_budget: int | None = None,
) -> dict:
    """Flag training samples that match each benchmark; returns {benchmark: table row}.

    With executor "ray" (or `partitions` / `memory_budget`, which also run on the local pool) the pool
    is searched by partitioned tasks (curate.dedup.overlap_partitioned): the same files, row for row.
    """
    if not benchmarks:
        raise CurateError(
            "no benchmarks given: use --benchmark NAME=PATH (a folder, a .parquet or a dataset)"
        )
    bad = [n for n in benchmarks if not _NAME.match(n)]
    if bad:
        raise CurateError(f"benchmark name {bad[0]!r} must be letters, digits, '_', '-' or '.'")
    if partitions is not None and partitions < 1:
        raise CurateError(f"--partitions must be at least 1, got {partitions}")
    k = default_max_distance() if max_distance is None else int(max_distance)
    min_similarity = default_similarity()
    ds = Dataset(dataset)
    results = {}
    if executor == "ray" or partitions is not None or memory_budget is not None:
        from curate.dedup.overlap_partitioned import find_matches

        evals, hashing_seconds = {}, {}
        for name, path in benchmarks.items():
            start = time.perf_counter()
            evals[name] = _hash_eval_set(name, path)
            hashing_seconds[name] = time.perf_counter() - start
        start = time.perf_counter()
        found, run = find_matches(
            ds,
            evals,
            k,
            min_similarity,
            partitions=partitions,
            memory_budget=memory_budget,
            executor=executor,
            workers=workers,
        )
        search_seconds = time.perf_counter() - start
        for name, path in benchmarks.items():
            matches = _table(name, evals[name], *found[name])
            seconds = hashing_seconds[name] + search_seconds
            results[name] = {**_write(ds, name, path, evals[name], matches, k, seconds), "partitions": run}
    else:
        train = load_nodes(ds, [])  # the downloaded, hashed training samples
        for name, path in benchmarks.items():
            start = time.perf_counter()
            ev = _hash_eval_set(name, path)
            image = _image_matches(ev, train, k, min_similarity, workers)
            matches = _table(name, ev, *image, _caption_matches(ds, ev))
            results[name] = _write(ds, name, path, ev, matches, k, time.perf_counter() - start)
    summary_path = sidecar(ds.signals_dir("overlap"), "summary.json")
    previous = storage.read_json(summary_path) if storage.exists(summary_path) else {}
    storage.write_json_atomic({**previous, **results}, summary_path)
    return results


def _write(ds: Dataset, name: str, path: str, ev: dict, matches: pa.Table, k: int, seconds: float) -> dict:
    """The benchmark's match and eval files; returns its row of the table."""
    flagged_eval = set(matches.column("eval_id").to_pylist())
    eval_table = pa.table(
        {
            "eval_id": ev["ids"],
            "label": ev["labels"],
            "overlapping": [i in flagged_eval for i in ev["ids"]],
            "error": ev["errors"],
        },
        schema=EVAL_SCHEMA,
    )
    out = ds.signals_dir("overlap")
    storage.write_parquet_atomic(matches, storage.join(out, f"{name}.parquet"))
    storage.write_parquet_atomic(eval_table, storage.join(out, f"{name}.eval.parquet"))
    n_eval = len(ev["ids"])
    kinds = matches.column("match_kind").to_pylist()
    row = {
        "path": path,
        "eval_images": n_eval,
        "eval_unreadable": sum(e is not None for e in ev["errors"]),
        "eval_overlapping": len(flagged_eval),
        "overlap_pct": round(100.0 * len(flagged_eval) / n_eval, 2) if n_eval else 0.0,
        "training_flagged": len(set(matches.column("uid").to_pylist())),
        "image_matches": kinds.count("image"),
        "caption_matches": kinds.count("caption"),
        "max_distance": k,
        "seconds": round(seconds, 3),
    }
    log.info(
        "overlap %s: %d of %d eval images overlap (%.2f%%), %d training samples flagged",
        name,
        len(flagged_eval),
        n_eval,
        row["overlap_pct"],
        row["training_flagged"],
    )
    return row


def format_table(results: dict) -> str:
    """The CLIP paper's contamination table (Radford et al. 2021, table 17) for these benchmarks."""
    head = (
        f"{'benchmark':<24} {'eval images':>12} {'overlapping':>12} {'overlap %':>10} {'train flagged':>14}"
    )
    lines = [head, "-" * len(head)]
    for name, r in results.items():
        lines.append(
            f"{name:<24} {r['eval_images']:>12} {r['eval_overlapping']:>12} {r['overlap_pct']:>9.2f}% "
            f"{r['training_flagged']:>14}"
        )
    return "\n".join(lines)


def _hash_eval_set(name: str, path: str) -> dict:
    ids, labels, captions, hashes, thumbs, errors = [], [], [], [], [], []
    for batch in tqdm(evalsets.read(path), desc=f"overlap: hashing {name}", unit="batch", disable=None):
        if batch.hashes is not None:
            h = np.array([v if v is not None else 0 for v in batch.hashes], dtype=np.int64)
            err = [
                None if v is not None else "no perceptual hash in the dataset's signals" for v in batch.hashes
            ]
            th = (
                simhash.as_matrix(pa.array(batch.thumbs, pa.binary(simhash.THUMB_VALUES)))
                if batch.thumbs is not None
                else None
            )
        else:
            h, th, err = hash_eval_images(batch.images)
        ids += batch.ids
        labels += batch.labels
        captions += batch.captions
        hashes.append(h)
        thumbs.append(th)
        errors += err
    return {
        "ids": ids,
        "labels": labels,
        "captions": captions,
        "errors": errors,
        "hashes": np.concatenate(hashes) if hashes else np.empty(0, np.int64),
        "thumbs": np.concatenate(thumbs) if thumbs and all(t is not None for t in thumbs) else None,
    }


def _image_matches(
    ev: dict, train: dict, k: int, min_similarity: float, workers: int
) -> tuple[np.ndarray, list[str], np.ndarray]:
    """(row among the readable eval images, training uid, pHash distance) of each near-duplicate pair,
    by eval image, then training sample (uid order)."""
    eval_idx = np.flatnonzero(readable(ev))
    train_idx = np.flatnonzero(train["phash_valid"])
    qi, tj, dist, _ = cross_near(
        ev["hashes"][eval_idx],
        None if ev["thumbs"] is None else ev["thumbs"][eval_idx],
        train["phash"][train_idx],
        None if train["thumbs"] is None else train["thumbs"][train_idx],
        k,
        min_similarity,
        workers,
    )
    return qi, pc.take(train["uid"], pa.array(train_idx[tj])).to_pylist(), dist


def readable(ev: dict) -> np.ndarray:
    """The eval images that were hashed: the queries of the image search."""
    return np.array([e is None for e in ev["errors"]], dtype=bool)


def _table(
    name: str, ev: dict, qi: np.ndarray, uids: list[str], dist: np.ndarray, captions: list[tuple[str, str]]
) -> pa.Table:
    """The benchmark's matches: image pairs in search order, then caption pairs by uid and eval id."""
    eval_ids = [ev["ids"][i] for i in np.flatnonzero(readable(ev))[qi]]
    dists: list[int | None] = [int(d) for d in dist]
    kinds = ["image"] * len(uids)
    uids = list(uids)
    for uid, eid in captions:
        uids.append(uid), eval_ids.append(eid), dists.append(None), kinds.append("caption")
    return pa.table(
        {
            "uid": uids,
            "benchmark": [name] * len(uids),
            "eval_id": eval_ids,
            "distance": dists,
            "match_kind": kinds,
        },
        schema=MATCHES_SCHEMA,
    )


def wanted_captions(con: duckdb.DuckDBPyConnection, ev: dict) -> pa.Table:
    """eval_id, key of the eval captions long enough to match: at least MIN_CAPTION_WORDS words."""
    keys = caption_keys(con, ev["captions"])
    wanted = [
        (eid, key) for eid, key in zip(ev["ids"], keys, strict=False) if len(key.split()) >= MIN_CAPTION_WORDS
    ]
    return pa.table(
        {
            "eval_id": pa.array([e for e, _ in wanted], pa.string()),
            "key": pa.array([k for _, k in wanted], pa.string()),
        }
    )


def caption_join(con: duckdb.DuckDBPyConnection, shards: str, evals: pa.Table) -> pa.Table:
    """uid and the other columns of `evals` for each successful sample of `shards` (a DuckDB source) whose
    caption key equals an eval key: one join streamed over the shards' caption column, sorted."""
    con.register("evals", evals)
    cols = ", ".join(f"e.{c}" for c in evals.column_names if c != "key")
    return con.sql(f"""SELECT s.uid, {cols}
                           FROM (SELECT uid, {_CAPTION_KEY.format("caption")} AS key FROM {shards}
                                 WHERE status = 'success') s
                           JOIN evals e USING (key) ORDER BY s.uid, {cols}""").to_arrow_table()


def _caption_matches(ds: Dataset, ev: dict) -> list[tuple[str, str]]:
    """(training uid, eval id) pairs whose caption keys are equal, over every shard of the dataset."""
    con = duck.connect()
    wanted = wanted_captions(con, ev)
    if not wanted.num_rows:
        return []
    shards = duck.source(
        con, ds.shard_paths(), f"download shards in {ds.shards_dir}", f"curate download ... {ds.root}"
    )
    t = caption_join(con, shards, wanted)
    return list(zip(t.column("uid").to_pylist(), t.column("eval_id").to_pylist(), strict=True))
