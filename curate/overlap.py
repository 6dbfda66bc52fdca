"""`curate overlap`: which training samples near-duplicate an evaluation image (contamination).

Evaluation images are hashed with the annotate stage's function and matched to training samples by
its near-duplicate rule (pHash distance and thumbnail correlation; curate.dedup.near, never
all-pairs). For captioned benchmarks, training
captions equal to an evaluation caption after normalization (case, punctuation, spaces; at least
MIN_CAPTION_WORDS words so that "image" matches nothing) are flagged too. Outputs per benchmark NAME:

  signals/overlap/NAME.parquet       uid, benchmark, eval_id, distance, match_kind (image | caption)
  signals/overlap/NAME.eval.parquet  eval_id, label, overlapping, error: for All / Clean / Overlap evals
  signals/overlap/summary.json       the CLIP-paper-style table, one entry per benchmark
"""

from __future__ import annotations

import logging
import re
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from curate import duck, evalsets, storage
from curate.dataset import Dataset
from curate.dedup import simhash
from curate.dedup.hashing import default_max_distance, default_similarity, hash_eval_images
from curate.dedup.near import cross_near
from curate.errors import CurateError

log = logging.getLogger(__name__)

MIN_CAPTION_WORDS = 3
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

MATCHES_SCHEMA = pa.schema([
    pa.field("uid", pa.string(), nullable=False),
    pa.field("benchmark", pa.string(), nullable=False),
    pa.field("eval_id", pa.string(), nullable=False),
    pa.field("distance", pa.int16()),  # Hamming distance of the hashes; null for caption matches
    pa.field("match_kind", pa.string(), nullable=False),  # image | caption
])
EVAL_SCHEMA = pa.schema([
    pa.field("eval_id", pa.string(), nullable=False),
    pa.field("label", pa.string()),
    pa.field("overlapping", pa.bool_(), nullable=False),
    pa.field("error", pa.string()),  # why the image could not be hashed (then it cannot overlap by image)
])


def normalize_caption(text: str | None) -> str:
    """Lower case, punctuation to spaces, single spaces: the caption-match key."""
    return " ".join(re.sub(r"[^\w]+", " ", (text or "").lower()).split())


def overlap(dataset: str, benchmarks: dict[str, str], *, max_distance: int | None = None,
            workers: int = 2) -> dict:
    """Flag training samples that match each benchmark; returns {benchmark: table row}."""
    if not benchmarks:
        raise CurateError("no benchmarks given: use --benchmark NAME=PATH (a folder, a .parquet or a dataset)")
    bad = [n for n in benchmarks if not _NAME.match(n)]
    if bad:
        raise CurateError(f"benchmark name {bad[0]!r} must be letters, digits, '_', '-' or '.'")
    k = default_max_distance() if max_distance is None else int(max_distance)
    min_similarity = default_similarity()
    ds = Dataset(dataset)
    train = _training(ds)
    results = {}
    for name, path in benchmarks.items():
        start = time.perf_counter()
        ev = _hash_eval_set(name, path)
        matches = _matches(name, ev, train, k, min_similarity, workers)
        flagged_eval = set(matches.column("eval_id").to_pylist())
        eval_table = pa.table({
            "eval_id": ev["ids"], "label": ev["labels"],
            "overlapping": [i in flagged_eval for i in ev["ids"]], "error": ev["errors"],
        }, schema=EVAL_SCHEMA)
        out = ds.signals_dir("overlap")
        storage.write_parquet_atomic(matches, storage.join(out, f"{name}.parquet"))
        storage.write_parquet_atomic(eval_table, storage.join(out, f"{name}.eval.parquet"))
        n_eval = len(ev["ids"])
        results[name] = {
            "path": path, "eval_images": n_eval, "eval_unreadable": sum(e is not None for e in ev["errors"]),
            "eval_overlapping": len(flagged_eval),
            "overlap_pct": round(100.0 * len(flagged_eval) / n_eval, 2) if n_eval else 0.0,
            "training_flagged": len(set(matches.column("uid").to_pylist())),
            "image_matches": int(sum(k_ == "image" for k_ in matches.column("match_kind").to_pylist())),
            "caption_matches": int(sum(k_ == "caption" for k_ in matches.column("match_kind").to_pylist())),
            "max_distance": k, "seconds": round(time.perf_counter() - start, 3),
        }
        log.info("overlap %s: %d of %d eval images overlap (%.2f%%), %d training samples flagged", name,
                 len(flagged_eval), n_eval, results[name]["overlap_pct"], results[name]["training_flagged"])
    summary_path = storage.join(ds.signals_dir("overlap"), "summary.json")
    previous = storage.read_json(summary_path) if storage.exists(summary_path) else {}
    storage.write_json_atomic({**previous, **results}, summary_path)
    return results


def format_table(results: dict) -> str:
    """The CLIP paper's contamination table (Radford et al. 2021, table 17) for these benchmarks."""
    head = f"{'benchmark':<24} {'eval images':>12} {'overlapping':>12} {'overlap %':>10} {'train flagged':>14}"
    lines = [head, "-" * len(head)]
    for name, r in results.items():
        lines.append(f"{name:<24} {r['eval_images']:>12} {r['eval_overlapping']:>12} {r['overlap_pct']:>9.2f}% "
                     f"{r['training_flagged']:>14}")
    return "\n".join(lines)


def _training(ds: Dataset) -> dict:
    """Training uids, hashes, thumbnails (when stored) and normalized captions of downloaded samples."""
    con = duck.connect()
    hashes = duck.source(con, storage.list_files(ds.signals_dir("hashes"), ".parquet"),
                         f"hash signals in {ds.signals_dir('hashes')}", f"curate annotate {ds.root}")
    shards = duck.source(con, ds.shard_paths(), f"download shards in {ds.shards_dir}", f"curate download ... {ds.root}")
    thumb = ", h.thumb" if "thumb" in con.sql(f"SELECT * FROM {hashes} LIMIT 0").columns else ""
    t = con.sql(f"""SELECT h.uid, h.phash{thumb}, s.caption FROM {hashes} h
                    JOIN (SELECT uid, caption, status FROM {shards}) s USING (uid)
                    WHERE s.status = 'success' ORDER BY h.uid""").to_arrow_table()
    return {
        "uid": t.column("uid"),
        "phash": t.column("phash").fill_null(0).to_numpy().astype(np.int64),
        "valid": t.column("phash").is_valid().to_numpy(zero_copy_only=False),
        "thumbs": simhash.as_matrix(t.column("thumb")) if thumb else None,
        "caption": t.column("caption"),
    }


def _hash_eval_set(name: str, path: str) -> dict:
    ids, labels, captions, hashes, thumbs, errors = [], [], [], [], [], []
    for batch in tqdm(evalsets.read(path), desc=f"overlap: hashing {name}", unit="batch", disable=None):
        if batch.hashes is not None:
            h = np.array([v if v is not None else 0 for v in batch.hashes], dtype=np.int64)
            err = [None if v is not None else "no perceptual hash in the dataset's signals" for v in batch.hashes]
            th = (simhash.as_matrix(pa.array(batch.thumbs, pa.binary(simhash.THUMB_VALUES)))
                  if batch.thumbs is not None else None)
        else:
            h, th, err = hash_eval_images(batch.images)
        ids += batch.ids
        labels += batch.labels
        captions += batch.captions
        hashes.append(h)
        thumbs.append(th)
        errors += err
    return {"ids": ids, "labels": labels, "captions": captions, "errors": errors,
            "hashes": np.concatenate(hashes) if hashes else np.empty(0, np.int64),
            "thumbs": np.concatenate(thumbs) if thumbs and all(t is not None for t in thumbs) else None}


def _matches(name: str, ev: dict, train: dict, k: int, min_similarity: float, workers: int) -> pa.Table:
    ok_eval = np.array([e is None for e in ev["errors"]], dtype=bool)
    eval_idx = np.flatnonzero(ok_eval)
    train_idx = np.flatnonzero(train["valid"])
    qi, tj, dist, _ = cross_near(
        ev["hashes"][eval_idx], None if ev["thumbs"] is None else ev["thumbs"][eval_idx],
        train["phash"][train_idx], None if train["thumbs"] is None else train["thumbs"][train_idx],
        k, min_similarity, workers)
    uids = pc.take(train["uid"], pa.array(train_idx[tj])).to_pylist()
    eval_ids = [ev["ids"][i] for i in eval_idx[qi]]
    dists: list[int | None] = [int(d) for d in dist]
    kinds = ["image"] * len(uids)

    by_caption: dict[str, list[str]] = {}
    for eid, cap in zip(ev["ids"], ev["captions"]):
        key = normalize_caption(cap)
        if len(key.split()) >= MIN_CAPTION_WORDS:
            by_caption.setdefault(key, []).append(eid)
    if by_caption:
        for uid, cap in zip(train["uid"].to_pylist(), train["caption"].to_pylist()):
            for eid in by_caption.get(normalize_caption(cap), ()):
                uids.append(uid), eval_ids.append(eid), dists.append(None), kinds.append("caption")
    return pa.table({"uid": uids, "benchmark": [name] * len(uids), "eval_id": eval_ids, "distance": dists,
                     "match_kind": kinds}, schema=MATCHES_SCHEMA)
