"""`curate dedup --executor ray`: the clusters of `curate dedup`, computed by tasks that each hold one of
P partitions, never the whole dataset (docs/SCALE.md).

The single-process path (curate.dedup.stage) numbers the samples by uid, links byte-identical copies and
same-URL samples to their first holder, links identical thumbnail codes to their first holder when the
rule agrees, searches the rest with SimHash LSH tables, checks the rule on candidates, and takes
connected components. Every one of those steps is local to a key, so each runs here as P tasks over
files partitioned by that key (curate.dedup.shuffle):

  load      shard -> its rows, scattered by uid range (splitters from a sample of uids)
  rank      uid range -> sorted: global index = the single path's node index; digests by digest key
  exact     digest partition -> sha256 / URL edges to the first holder; copies that leave the search
  codes     uid range -> SimHash codes of the searched samples, scattered by code-fold bucket
  fold      fold partition -> identical codes linked to their first holder; the search set by range
  search    uid range -> the search set in index order (the plan is measured on the same sampled rows)
  keys      (code word, uid range) -> the range's key in each of the word's tables, by bucket partition
  lsh       (code word, bucket partition) -> each table's buckets of this partition; pairs in radius
  attach    range of a -> pairs with a's pHash and thumbnail, by range of b
  verify    range of b -> the rule on each pair: near edges
  labels    node range -> connected components (curate.dedup.components)
  clusters  label range -> representatives chosen as the single path chooses; rows by node range

Bucket partitions take the top bits of the same mixed key the single path buckets on, so every pair that
shares a bucket there shares a partition here: the candidates, edges, clusters and representatives are
the same. Each task writes its files atomically and a completion marker; a rerun skips finished tasks.
The work folder (signals/dedup/_work/<fingerprint>) is removed once clusters.parquet is written.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import math
import os
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curate import storage
from curate.dataset import Dataset, sidecar
from curate.dedup import clusters, components, hashing, mih, nodes, shuffle, simhash
from curate.dedup.hashing import default_max_distance, default_similarity
from curate.dedup.stage import CLUSTERS_SCHEMA, DUPLICATE_KINDS, _same_value_edges, clusters_path
from curate.errors import CurateError
from curate.executor import Job, execute
from curate.extras import require
from curate.inspect import duck

log = logging.getLogger(__name__)

BYTES_PER_SAMPLE = (
    2500  # a task's working set per sample of its partition (measured 1.5-1.9 KB; docs/SCALE.md)
)
TASK_FLOOR = 400 << 20  # a task's memory before any data: Python, Arrow, DuckDB, Ray worker (measured)
DEFAULT_MEMORY_BUDGET = 1 << 30
_SPLITTER_SAMPLE = 2048  # uids read per hash file to place the uid range splitters
_WORDS = [f"w{i}" for i in range(simhash.WORDS)]
_NODE_COLUMNS = [
    "uid",
    "phash",
    "phash_valid",
    "pixels",
    "sha0",
    "sha1",
    "sha_valid",
    "url0",
    "url1",
    "url_valid",
]


def partitions_for(samples: int, memory_budget: int) -> int:
    """Partitions that keep each task's working set within the budget (above the fixed floor of a task)."""
    if memory_budget <= TASK_FLOOR + (64 << 20):
        raise CurateError(
            f"a memory budget of {memory_budget / 2**20:.0f} MB leaves no room for data: a task needs about "
            f"{TASK_FLOOR >> 20} MB before it reads any (Python, Arrow, DuckDB, Ray); give at least 512M"
        )
    return max(1, math.ceil(samples * BYTES_PER_SAMPLE / (memory_budget - TASK_FLOOR)))


def dedup_partitioned(
    dataset: str,
    *,
    max_distance: int | None = None,
    partitions: int | None = None,
    memory_budget: int | None = None,
    executor: str = "ray",
    workers: int | None = None,
    retries: int = 2,
) -> dict:
    """`curate.dedup.dedup` for one dataset, as P partitioned tasks per step; returns the summary."""
    start = time.perf_counter()
    k = default_max_distance() if max_distance is None else int(max_distance)
    sim = default_similarity()
    ds = Dataset(dataset)
    shards = _shards(ds)
    samples = sum(pq.read_metadata(*_open(h)).num_rows for _, h in shards.values())
    parts = partitions or partitions_for(samples, memory_budget or DEFAULT_MEMORY_BUDGET)
    if parts < 1:
        raise CurateError(f"--partitions must be at least 1, got {parts}")
    work = storage.join(ds.signals_dir("dedup"), "_work", _fingerprint(shards, parts, k, sim))
    log.info("dedup: %d hashed samples in %d partitions (work files in %s)", samples, parts, work)
    run = {"executor": executor, "workers": workers, "retries": retries}
    with _ray_session(executor, workers):
        result = _Run(work, parts, k, sim, run).go(shards)
    summary = _write(dataset, work, parts, result, k, sim, time.perf_counter() - start)
    fs, inner = storage.url_to_fs(work)
    fs.rm(inner, recursive=True)
    return summary


class _Run:
    """The steps in order; each is one `execute` over P jobs (or one per shard). `step` also runs the
    partitioned overlap's steps (curate.dedup.overlap_partitioned), logged under `label`."""

    def __init__(self, work: str, parts: int, k: int, sim: float, run: dict, label: str = "dedup"):
        self.work, self.parts, self.k, self.sim, self.run, self.label = work, parts, k, sim, run, label
        self.peaks: dict[str, float] = {}  # step: the largest peak RSS of its tasks (MB)
        self.seconds: dict[str, float] = {}  # step: wall seconds
        self.cpu: dict[str, float] = {}  # step: CPU seconds of its tasks
        self.resumed = 0  # tasks an earlier run had finished

    def step(self, name: str, fn, payloads: dict) -> list[dict]:
        jobs = [
            Job(
                key=f"{name}-{key}",
                stats_path=storage.join(self.work, "_done", f"{name}-{key}.json"),
                payload={"work": self.work, "parts": self.parts, "k": self.k, "sim": self.sim, **payload},
            )
            for key, payload in payloads.items()
        ]
        began = time.perf_counter()
        self.resumed += execute(
            functools.partial(shuffle.measured, fn),
            jobs,
            desc=f"{self.label} {name}",
            strict=True,
            **self.run,
        ).skipped
        stats = [storage.read_json(job.stats_path) for job in jobs]
        log.info("%s %s: %d tasks, %.1f s", self.label, name, len(jobs), time.perf_counter() - began)
        # a step may run in several calls (lsh: one per code word): its figures add up
        self.peaks[name] = max(self.peaks.get(name, 0.0), *(s.get("peak_rss_mb", 0.0) for s in stats))
        self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - began, 1)
        self.cpu[name] = round(self.cpu.get(name, 0.0) + sum(s.get("cpu_s", 0.0) for s in stats), 1)
        return stats

    def load(
        self, task, shards: dict[str, tuple[str, str]], splitters: list[str]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Run `task` on every shard, sending its rows to their uid ranges; each range's first row and
        row count."""
        loaded = self.step(
            "load",
            task,
            {
                key: {"key": key, "shard": s, "hashes": h, "splitters": splitters}
                for key, (s, h) in shards.items()
            },
        )
        counts = np.sum([s["per_range"] for s in loaded], axis=0).astype(np.int64)
        return np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64), counts

    def go(self, shards: dict[str, tuple[str, str]]) -> dict:
        P, R = self.parts, range(self.parts)
        keys = sorted(shards)
        splitters = _splitters([h for _, h in shards.values()], P)
        starts, counts = self.load(load, shards, splitters)
        self.step("rank", rank, {j: {"range": j, "start": int(starts[j]), "shards": keys} for j in R})
        base = {"starts": starts}
        self.step("exact", exact, {q: {**base, "part": q} for q in R})
        coded = self.step("codes", codes, {j: {**base, "range": j} for j in R})
        n_idx = sum(s["coded"] for s in coded)
        self.step("fold", fold, {f: {**base, "part": f, "coded": n_idx} for f in R})
        searched = [s["searched"] for s in self.step("search", search, {j: {"range": j} for j in R})]
        n_search = int(sum(searched))
        lsh_plan = _plan(self.work, searched, self.sim, self.k)
        by_word: dict[int, list] = {}
        for word, mask, hash_mask in lsh_plan.masks():
            by_word.setdefault(word, []).append((mask, hash_mask))
        lsh_keys = [f"{w}-{p}" for w in sorted(by_word) for p in R]
        # a word at a time: its keys stay on disk only until its buckets are searched
        for w in sorted(by_word):
            self.step(
                "keys",
                table_keys,
                {f"{w}-{j}": {"word": w, "range": j, "tables": by_word[w], "searched": n_search} for j in R},
            )
            self.step(
                "lsh",
                lsh,
                {
                    f"{w}-{p}": {
                        **base,
                        "word": w,
                        "part": p,
                        "tables": len(by_word[w]),
                        "searched": n_search,
                    }
                    for p in R
                },
            )
            fs, inner = storage.url_to_fs(storage.join(self.work, f"keys-{w}"))
            if fs.exists(inner):  # a resumed run may have removed it already
                fs.rm(inner, recursive=True)
        self.step("attach", attach, {j: {**base, "range": j, "sources": lsh_keys} for j in R})
        self.step("verify", verify, {j: {**base, "range": j} for j in R})
        edge_sources = [f"{step}-{p}" for step in ("exact", "fold", "verify") for p in R]
        began = time.perf_counter()
        last, self.peaks["components"], resumed = components.labels(self.work, edge_sources, starts, self.run)
        self.resumed += resumed
        self.seconds["components"] = round(time.perf_counter() - began, 1)
        self.step(
            "clustered", send_to_label, {j: {**base, "range": j, "labels": f"labels-{last}"} for j in R}
        )
        reps = self.step("representatives", representatives, {j: {**base, "range": j} for j in R})
        return {
            "starts": starts,
            "counts": counts,
            "search": lsh_plan.describe(),
            "clusters": sum(s["clusters"] for s in reps),
            "peaks": self.peaks,
            "step_seconds": self.seconds,
            "step_cpu_seconds": self.cpu,
            "resumed": self.resumed,
            "rounds": last + 1,
        }


def load(job: Job) -> dict:
    """A shard's hashed rows, scattered by uid range."""
    p = job.payload
    con = duck.connect()
    part = nodes._node_part(con, 0, nodes._own_query(con, p["shard"], p["hashes"]), p["hashes"])
    if part["thumbs"] is None:
        raise CurateError(f"{p['hashes']} has no thumbnails")
    table = pa.table(
        {
            "uid": part["uid"],
            "phash": part["phash"],
            "phash_valid": part["phash_valid"],
            "pixels": part["pixels"],
            "sha0": part["sha"][:, 0],
            "sha1": part["sha"][:, 1],
            "sha_valid": part["sha_valid"],
            "url0": part["url"][:, 0],
            "url1": part["url"][:, 1],
            "url_valid": part["url_valid"],
            "thumb": _thumbs(part["thumbs"]),
        }
    )
    uids = part["uid"].to_numpy(zero_copy_only=False).astype(str)
    dest = np.searchsorted(np.asarray(p["splitters"], dtype=str), uids, side="right")
    per_range = shuffle.scatter(table, dest, p["parts"], p["work"], "load", p["key"])
    return {"rows": table.num_rows, "per_range": per_range.tolist()}


def rank(job: Job) -> dict:
    """Sort a uid range (stable: equal uids keep shard order, as in the single path) and number it."""
    p = job.payload
    t = shuffle.gather(p["work"], "load", p["shards"], p["range"])
    t = t.take(pc.sort_indices(t, [("uid", "ascending")]))  # a stable sort
    gidx = np.arange(p["start"], p["start"] + t.num_rows, dtype=np.int64)
    t = t.append_column("gidx", pa.array(gidx))
    storage.write_parquet_atomic(t, shuffle.path(p["work"], "nodes", 0, p["range"]), compression="lz4")
    for name in ("sha", "url"):
        valid = t.column(f"{name}_valid").to_numpy(zero_copy_only=False)
        d = t.filter(pa.array(valid)).select(["gidx", f"{name}0", f"{name}1"])
        shuffle.scatter(
            d,
            shuffle.of_key(d.column(f"{name}0").to_numpy(), p["parts"]),
            p["parts"],
            p["work"],
            f"digest-{name}",
            p["range"],
        )
    return {"rows": t.num_rows}


def exact(job: Job) -> dict:
    """sha256 and URL edges to each digest's first holder; the sha copies leave the near search."""
    p = job.payload
    a_all, b_all = [], []
    for name in ("sha", "url"):
        t = shuffle.gather(p["work"], f"digest-{name}", range(p["parts"]), p["part"])
        g = t.column("gidx").to_numpy()
        digests = np.column_stack([t.column(f"{name}0").to_numpy(), t.column(f"{name}1").to_numpy()])
        member, head = _same_value_edges(digests, np.ones(len(g), bool))
        a_all.append(g[member])
        b_all.append(g[head])
        if name == "sha":
            copies = pa.table({"gidx": g[member]})
            shuffle.scatter(
                copies, shuffle.of_node(g[member], p["starts"]), p["parts"], p["work"], "copies", p["part"]
            )
    _edges(p, "exact", np.concatenate(a_all), np.concatenate(b_all))
    return {"edges": int(sum(len(a) for a in a_all))}


def codes(job: Job) -> dict:
    """SimHash codes of the searched samples of a range (valid pHash, no earlier byte copy, not flat)."""
    p = job.payload
    t = storage.read_parquet(
        shuffle.path(p["work"], "nodes", 0, p["range"]), ["gidx", "phash", "phash_valid", "thumb"]
    )
    start = p["starts"][p["range"]]
    searched = t.column("phash_valid").to_numpy(zero_copy_only=False).copy()
    copies = shuffle.gather(p["work"], "copies", range(p["parts"]), p["range"]).column("gidx").to_numpy()
    searched[copies - start] = False
    thumbs = simhash.as_matrix(t.column("thumb"))
    idx = np.flatnonzero(searched & simhash.informative(thumbs))
    c = simhash.simhash(thumbs, idx)
    out = pa.table(
        {
            "gidx": t.column("gidx").take(pa.array(idx)),
            "phash": t.column("phash").take(pa.array(idx)),
            **{w: c[:, i] for i, w in enumerate(_WORDS)},
            "fold": simhash.fold(c),
            "thumb": t.column("thumb").take(pa.array(idx)),
        }
    )
    shuffle.scatter(
        out,
        shuffle.of_key(out.column("fold").to_numpy(), p["parts"]),
        p["parts"],
        p["work"],
        "codes",
        p["range"],
    )
    return {"coded": len(idx)}


def fold(job: Job) -> dict:
    """Identical codes (one fold bucket, as simhash.same_fold groups them): members join their first
    holder when the rule agrees; the heads and the rest form the search set."""
    p = job.payload
    t = shuffle.gather(p["work"], "codes", range(p["parts"]), p["part"])  # index order
    idx_bits = max(1, int(p["coded"] - 1).bit_length())
    with np.errstate(over="ignore"):
        bucket = (t.column("fold").to_numpy() * shuffle.MIX) & np.uint64(~((1 << idx_bits) - 1) & (2**64 - 1))
    order = np.argsort(bucket, kind="stable")
    new = np.ones(len(order), bool)
    new[1:] = bucket[order][1:] != bucket[order][:-1]
    head = order[np.flatnonzero(new)[np.cumsum(new) - 1]]
    member = order[~new]
    head = head[~new]
    phash, thumbs = t.column("phash").to_numpy(), simhash.as_matrix(t.column("thumb"))
    ok = hashing.near(phash, phash, thumbs, thumbs, member, head, p["k"], p["sim"])[0]
    g = t.column("gidx").to_numpy()
    _edges(p, "fold", g[member[ok]], g[head[ok]])
    keep = np.sort(np.concatenate([order[new], member[~ok]]))
    out = t.select(["gidx", "phash", *_WORDS]).take(pa.array(keep))
    shuffle.scatter(out, shuffle.of_node(g[keep], p["starts"]), p["parts"], p["work"], "searchset", p["part"])
    return {"linked": int(ok.sum())}


def search(job: Job) -> dict:
    """A range's search set in index order: the rows the LSH tables and the plan read."""
    p = job.payload
    t = shuffle.gather(p["work"], "searchset", range(p["parts"]), p["range"])
    t = t.take(pa.array(np.argsort(t.column("gidx").to_numpy(), kind="stable")))
    storage.write_parquet_atomic(t, shuffle.path(p["work"], "search", 0, p["range"]), compression="lz4")
    return {"searched": t.num_rows}


def table_keys(job: Job) -> dict:
    """A range's search set keyed in every table of one code word, each (key, node, pHash) sent to the
    key's bucket partition: every table's keys are computed and written once, so the work is linear in
    rows x tables however many partitions there are."""
    p = job.payload
    word = f"w{p['word']}"
    t = storage.read_parquet(shuffle.path(p["work"], "search", 0, p["range"]), ["gidx", "phash", word])
    g, h, column = (t.column(c).to_numpy() for c in ("gidx", "phash", word))
    n, tables = len(g), len(p["tables"])
    key_mask = _key_mask(p["searched"])
    bucket = np.empty(n * tables, np.uint64)
    for tab, (mask, hash_mask) in enumerate(p["tables"]):
        out = bucket[tab * n : (tab + 1) * n]
        simhash._keys(column, h, mask, hash_mask, out=out)
        with np.errstate(over="ignore"):
            np.multiply(out, shuffle.MIX, out=out)
        np.bitwise_and(out, key_mask, out=out)
    table = pa.table(
        {
            "table": np.repeat(np.arange(tables, dtype=np.int16), n),
            "bucket": bucket,
            "gidx": np.tile(g, tables),
            "phash": np.tile(h, tables),
        }
    )
    shuffle.scatter(
        table, shuffle.of_mixed(bucket, p["parts"]), p["parts"], p["work"], f"keys-{p['word']}", p["range"]
    )
    return {"keys": len(bucket)}


def lsh(job: Job) -> dict:
    """The tables of one code word, restricted to the buckets of one partition (the keys every range sent
    it): pairs within the radius."""
    p = job.payload
    parts = p["parts"]
    idx_bits = max(1, int(p["searched"] - 1).bit_length())
    t = shuffle.gather(p["work"], f"keys-{p['word']}", range(parts), p["part"])
    tab = t.column("table").to_numpy()
    order = np.argsort(tab, kind="stable")  # by table; within one, by range, then node: index order
    bounds = np.searchsorted(tab[order], np.arange(p["tables"] + 1))
    bucket_all, g_all, h_all = (t.column(c).to_numpy() for c in ("bucket", "gidx", "phash"))
    found_a, found_b = [np.empty(0, np.int64)], [np.empty(0, np.int64)]
    for i in range(p["tables"]):
        rows = order[bounds[i] : bounds[i + 1]]
        bucket, g, h = bucket_all[rows], g_all[rows], h_all[rows]
        words = bucket | np.arange(len(bucket), dtype=np.uint64)  # local rows ascend with the index
        words.sort()
        a, b = simhash.bucket_pairs_within(words, idx_bits, h, p["k"])
        found_a.append(g[a])
        found_b.append(g[b])
    a, b = shuffle.distinct_pairs(np.concatenate(found_a), np.concatenate(found_b))
    shuffle.scatter(
        pa.table({"a": a, "b": b}),
        shuffle.of_node(a, p["starts"]),
        parts,
        p["work"],
        "candidates",
        job.key.removeprefix("lsh-"),
    )
    return {"candidates": len(a)}


def _key_mask(searched: int) -> np.uint64:
    """The bucket bits of a mixed key: the single path drops the low bits that hold a row index."""
    idx_bits = max(1, int(searched - 1).bit_length())
    return np.uint64(~((1 << idx_bits) - 1) & (2**64 - 1))


def attach(job: Job) -> dict:
    """Candidate pairs of a range's first ends, with that end's pHash and thumbnail, sent to the second's."""
    p = job.payload
    t = shuffle.gather(p["work"], "candidates", p["sources"], p["range"])
    a, b = shuffle.distinct_pairs(t.column("a").to_numpy(), t.column("b").to_numpy())
    n = storage.read_parquet(shuffle.path(p["work"], "nodes", 0, p["range"]), ["phash", "thumb"])
    at = pa.array(a - p["starts"][p["range"]])
    out = pa.table({"a": a, "b": b, "phash": n.column("phash").take(at), "thumb": n.column("thumb").take(at)})
    shuffle.scatter(out, shuffle.of_node(b, p["starts"]), p["parts"], p["work"], "attached", p["range"])
    return {"pairs": len(a)}


def verify(job: Job) -> dict:
    """The annotate stage's rule on each candidate pair whose second end lies in this range."""
    p = job.payload
    t = shuffle.gather(p["work"], "attached", range(p["parts"]), p["range"])
    n = storage.read_parquet(shuffle.path(p["work"], "nodes", 0, p["range"]), ["phash", "thumb"])
    b_row = t.column("b").to_numpy() - p["starts"][p["range"]]
    ok = hashing.near(
        t.column("phash").to_numpy(),
        n.column("phash").to_numpy(),
        simhash.as_matrix(t.column("thumb")),
        simhash.as_matrix(n.column("thumb")),
        np.arange(t.num_rows),
        b_row,
        p["k"],
        p["sim"],
    )[0]
    _edges(p, "verify", t.column("a").to_numpy()[ok], t.column("b").to_numpy()[ok])
    return {"near": int(ok.sum())}


def send_to_label(job: Job) -> dict:
    """Each clustered node's columns, sent to the range of its label (its component's smallest index)."""
    p = job.payload
    work, j, starts = p["work"], p["range"], p["starts"]
    lab = storage.read_parquet(shuffle.path(work, p["labels"], 0, j))
    node = lab.column("node").to_numpy()
    t = storage.read_parquet(shuffle.path(work, "nodes", 0, j), _NODE_COLUMNS).take(
        pa.array(node - starts[j])
    )
    t = t.append_column("gidx", pa.array(node)).append_column("label", lab.column("label"))
    shuffle.scatter(
        t, shuffle.of_node(lab.column("label").to_numpy(), starts), p["parts"], work, "clustered", j
    )
    return {"clustered": len(node)}


def representatives(job: Job) -> dict:
    """The clusters whose label lies in this range: representative chosen as the single path does (largest
    image, then smallest index), kind and distance per member; rows sent to the members' ranges."""
    p = job.payload
    t = shuffle.gather(p["work"], "clustered", range(p["parts"]), p["range"])
    label = np.unique(t.column("label").to_numpy(), return_inverse=True)[1]
    rep = clusters.representatives(label, -t.column("pixels").to_numpy(), t.column("gidx").to_numpy())
    col = {c: t.column(c).to_numpy(zero_copy_only=False) for c in _NODE_COLUMNS if c != "uid"}
    return scatter_members(p, t, label, rep, member_kinds(col, rep))


def member_kinds(col: dict[str, np.ndarray], rep: np.ndarray) -> np.ndarray:
    """Per member, its tie to the representative: -1 it is the representative, 0 the same bytes, 1 the
    same URL, 2 a near duplicate (the single path's DUPLICATE_KINDS)."""

    def same(name: str) -> np.ndarray:
        valid = col[f"{name}_valid"]
        return (
            valid
            & valid[rep]
            & (col[f"{name}0"] == col[f"{name}0"][rep])
            & (col[f"{name}1"] == col[f"{name}1"][rep])
        )

    is_rep = rep == np.arange(len(rep))
    return np.where(is_rep, -1, np.where(same("sha"), 0, np.where(same("url"), 1, 2))).astype(np.int8)


def scatter_members(p: dict, t: pa.Table, label: np.ndarray, rep: np.ndarray, kind: np.ndarray) -> dict:
    """Each member's cluster row (cluster, representative, kind, pHash distance) sent to its range."""
    g = t.column("gidx").to_numpy()
    phash = t.column("phash").to_numpy()
    valid = t.column("phash_valid").to_numpy(zero_copy_only=False)
    out = pa.table(
        {
            "gidx": g,
            "cluster_id": g[rep],
            "representative_uid": t.column("uid").take(pa.array(rep)),
            "kind": kind,
            "distance": mih.popcount(phash ^ phash[rep]).astype(np.int16),
            "distance_valid": valid & valid[rep],
        }
    )
    shuffle.scatter(out, shuffle.of_node(g, p["starts"]), p["parts"], p["work"], "rows", p["range"])
    return {"clusters": int(label.max() + 1) if len(label) else 0}


def _edges(p: dict, step: str, a: np.ndarray, b: np.ndarray) -> None:
    scatter_edges(p, f"{step}-{p.get('part', p.get('range'))}", a, b)


def scatter_edges(p: dict, source: str, a: np.ndarray, b: np.ndarray) -> None:
    """Edges in both directions, each under the range of its first end."""
    ea, eb = np.concatenate([a, b]).astype(np.int64), np.concatenate([b, a]).astype(np.int64)
    shuffle.scatter(
        pa.table({"a": ea, "b": eb}), shuffle.of_node(ea, p["starts"]), p["parts"], p["work"], "edges", source
    )


def _thumbs(thumbs: np.ndarray) -> pa.Array:
    return pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(simhash.THUMB_VALUES),
        len(thumbs),
        [None, pa.py_buffer(np.ascontiguousarray(thumbs).tobytes())],
    )


def _shards(ds: Dataset) -> dict[str, tuple[str, str]]:
    """{shard key: (shard path, hash signal path)} of the hashed shards, as `load_nodes` picks them,
    each with thumbnails (the partitioned search needs them)."""
    shards = nodes.hashed_shards(ds)
    for _, hashes in shards.values():
        if "thumb" not in pq.read_schema(*_open(hashes)).names:
            raise CurateError(
                f"{hashes} holds no thumbnails, which the partitioned dedup needs: rerun "
                f"`curate annotate {ds.root}` to add them, or dedup with --executor local"
            )
    return shards


def _open(path: str) -> tuple[str, object]:
    fs, inner = storage.url_to_fs(path)
    return inner, fs


def _fingerprint(shards: dict[str, tuple[str, str]], parts: int, k: int, sim: float) -> str:
    """Names the work folder: a rerun on the same inputs and settings resumes, anything else starts anew."""
    sizes = []
    for key, (shard, hashes) in sorted(shards.items()):
        fs, inner = storage.url_to_fs(hashes)
        sizes.append([key, fs.size(inner), storage.url_to_fs(shard)[0].size(storage.url_to_fs(shard)[1])])
    text = json.dumps({"parts": parts, "k": k, "sim": sim, "shards": sizes})
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _splitters(hash_paths: list[str], parts: int) -> list[str]:
    """parts - 1 uids that cut a sample of the uids (from up to 64 files) into equal ranges."""
    picked = [
        hash_paths[i] for i in np.linspace(0, len(hash_paths) - 1, min(64, len(hash_paths))).astype(int)
    ]
    uids: list[str] = []
    for path in dict.fromkeys(picked):
        inner, fs = _open(path)
        with fs.open(inner, "rb") as fh:
            batch = next(pq.ParquetFile(fh).iter_batches(batch_size=_SPLITTER_SAMPLE, columns=["uid"]), None)
        uids += [] if batch is None else batch.column(0).to_pylist()
    uids.sort()
    return [uids[len(uids) * i // parts] for i in range(1, parts)] if uids else [""] * (parts - 1)


def _plan(work: str, searched: list[int], sim: float, k: int) -> simhash.LshPlan:
    """The single path's plan: measured on the same rows of the search set (index order)."""
    total = int(sum(searched))
    pos = simhash.sample_rows(total)
    starts = np.concatenate([[0], np.cumsum(searched)])
    where = np.searchsorted(starts, pos, side="right") - 1
    codes_s, hashes_s = np.empty((len(pos), simhash.WORDS), np.uint64), np.empty(len(pos), np.uint64)
    for j in np.unique(where):
        rows = np.flatnonzero(where == j)
        t = storage.read_parquet(shuffle.path(work, "search", 0, int(j)), ["phash", *_WORDS])
        at = pos[rows] - starts[j]
        codes_s[rows] = np.column_stack([t.column(w).to_numpy()[at] for w in _WORDS])
        hashes_s[rows] = t.column("phash").to_numpy()[at]
    return simhash.plan(codes_s, sim, hashes=hashes_s, radius=k, total=total)


@contextlib.contextmanager
def _ray_session(executor: str, workers: int | None):
    """One Ray connection for all steps (the executor would otherwise start and stop Ray per step)."""
    if executor != "ray":
        yield
        return
    ray = require("ray", "ray")
    if ray.is_initialized():
        yield
        return
    address = os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(num_cpus=workers or os.cpu_count(), include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


def _write(dataset: str, work: str, parts: int, result: dict, k: int, sim: float, seconds: float) -> dict:
    """clusters.parquet, range by range in index order (= uid order), and the summary."""
    out = clusters_path(dataset)
    kinds = np.zeros(3, np.int64)
    samples = 0
    fs, inner = storage.url_to_fs(out)
    fs.makedirs(inner.rpartition("/")[0], exist_ok=True)
    target = (
        f"{inner.rpartition('/')[0]}/.tmp-{os.getpid()}-clusters.parquet" if storage.is_local(fs) else inner
    )
    with fs.open(target, "wb") as fh, pq.ParquetWriter(fh, CLUSTERS_SCHEMA, compression="zstd") as writer:
        for j in range(parts):
            table = _range_rows(work, parts, j, int(result["starts"][j]))
            kind = table.column("duplicate_kind")
            for i, name in enumerate(("exact", "url", "near")):
                kinds[i] += int(pc.sum(pc.equal(kind, name)).as_py() or 0)
            samples += table.num_rows
            writer.write_table(table)
    if target != inner:
        os.replace(target, inner)
    summary = {
        "samples": samples,
        "clusters": int(result["clusters"]),
        "duplicates": int(kinds.sum()),
        "duplicates_by_kind": dict(zip(("exact", "url", "near"), map(int, kinds), strict=True)),
        "duplicates_of_against": 0,
        "against": [],
        "max_distance": k,
        "search": result["search"],
        "seconds": round(seconds, 3),
        "semantic": None,
        "min_thumbnail_similarity": sim,
        "partitions": {
            "count": parts,
            "component_rounds": result["rounds"],
            "peak_task_rss_mb": max(result["peaks"].values()),
            "peak_task_rss_mb_by_step": result["peaks"],
            "seconds_by_step": result["step_seconds"],
            "cpu_seconds_by_step": result["step_cpu_seconds"],
            "resumed_tasks": result["resumed"],
        },
    }
    storage.write_json_atomic(summary, sidecar(Dataset(dataset).signals_dir("dedup"), "summary.json"))
    log.info(
        "dedup: %d duplicates in %d clusters (%.1f s, %d partitions)",
        summary["duplicates"],
        summary["clusters"],
        seconds,
        parts,
    )
    return summary


def _range_rows(work: str, parts: int, j: int, start: int) -> pa.Table:
    """The clusters rows of one uid range: singletons by default, clustered nodes from `representatives`."""
    n = storage.read_parquet(shuffle.path(work, "nodes", 0, j), ["uid", "phash_valid"])
    rows = shuffle.gather(work, "rows", range(parts), j)
    m = n.num_rows
    at = rows.column("gidx").to_numpy() - start
    cluster = np.arange(start, start + m, dtype=np.int64)
    cluster[at] = rows.column("cluster_id").to_numpy()
    kind = np.full(m, -1, np.int8)
    dist = np.zeros(m, np.int16)
    valid = n.column("phash_valid").to_numpy(zero_copy_only=False).copy()
    kind[at], dist[at] = rows.column("kind").to_numpy(), rows.column("distance").to_numpy()
    valid[at] = rows.column("distance_valid").to_numpy(zero_copy_only=False)
    rep_at = np.arange(m)
    rep_at[at] = m + np.arange(len(at))
    rep_uid = pa.concat_arrays(
        [n.column("uid").combine_chunks(), rows.column("representative_uid").combine_chunks()]
    )
    return pa.table(
        {
            "uid": n.column("uid"),
            "cluster_id": pa.array(cluster, pa.int64()),
            "representative_uid": rep_uid.take(pa.array(rep_at)),
            "is_representative": pa.array(kind < 0),
            "duplicate_kind": pc.take(pa.array(DUPLICATE_KINDS), pa.array(kind, mask=kind < 0)),
            "distance_to_representative": pa.array(dist, pa.int16(), mask=~valid),
            "against_dataset": pa.nulls(m, pa.string()),
        },
        schema=CLUSTERS_SCHEMA,
    )
