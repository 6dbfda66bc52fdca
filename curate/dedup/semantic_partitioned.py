"""`curate dedup --semantic --executor ray`: the clusters of `curate dedup --semantic`, computed by tasks
that each hold one of P partitions of the embeddings, never all of them (docs/SCALE.md).

The exact and near clusters come from the partitioned dedup (curate.dedup.partitioned); this module adds
the semantic edges and joins both, as the single path (curate.dedup.stage, curate.dedup.semantic) does:

  load      shard -> its node columns (digests, pHash), scattered by uid range
  rank      uid range -> sorted: the single path's node index, the hash cluster of each node
  embed     clip signal file -> uid, clip_score, embedding, scattered by uid range
  join      uid range -> the embeddings of its nodes (the last copy of a uid wins, as there)
  sample    uid range -> its rows of the driver's two samples (positions drawn as the single path draws)
  (driver)  principal directions and k-means centroids, fitted on the same rows with the same generators
  assign    uid range -> nearest and second-nearest centroid; rows sent to their clusters' partitions
  pairs     cluster partition -> the single path's in-cluster search, cluster by cluster
  distinct  node range -> each pair once (a guest can meet a pair twice): semantic edges
  labels    connected components of the hash and semantic edges (curate.dedup.components)
  clusters  label range -> representative: highest clip_score, then smallest index; kinds and distances

The driver holds the two fitting samples (max(40 k, 4096) and 40 k rows, k the cluster count: about 16%
of the embeddings at the default k = n / 500); every other step holds one range or one partition of
clusters. Cluster c goes to partition c mod P, so a partition holds about n / P members and their guests.
The centroids are the single path's; a row's projection is computed in a block of other rows, so a row
equidistant from two centroids to the last float32 bit could fall on the other side: the pairs, clusters
and representatives are otherwise the same.
"""

from __future__ import annotations

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
from curate.dedup import clusters, components, nodes, semantic, shuffle
from curate.dedup.partitioned import (
    DEFAULT_MEMORY_BUDGET,
    TASK_FLOOR,
    _range_rows,
    _ray_session,
    _Run,
    dedup_partitioned,
    member_kinds,
    partitions_for,
    scatter_edges,
    scatter_members,
)
from curate.dedup.stage import CLUSTERS_SCHEMA, DUPLICATE_KINDS, _score_rank, clusters_path
from curate.errors import CurateError
from curate.executor import Job
from curate.inspect import duck

log = logging.getLogger(__name__)

BYTES_PER_DIM = 13  # a task's working set per embedding value of its range (measured 10-12.4; docs/SCALE.md)
_NODE_COLUMNS = ["uid", "phash", "phash_valid", "sha0", "sha1", "sha_valid", "url0", "url1", "url_valid"]


def dedup_semantic_partitioned(
    dataset: str,
    *,
    eps: float = semantic.DEFAULT_EPS,
    clusters_k: int | None = None,
    max_distance: int | None = None,
    partitions: int | None = None,
    memory_budget: int | None = None,
    executor: str = "ray",
    workers: int | None = None,
    retries: int = 2,
) -> dict:
    """`curate.dedup.dedup(dataset, semantic_eps=eps, semantic_clusters=clusters_k)` as partitioned tasks."""
    start = time.perf_counter()
    semantic.check_settings(eps, clusters_k)
    ds = Dataset(dataset)
    clip_files = semantic.clip_files(ds)
    run = {"executor": executor, "workers": workers, "retries": retries}
    with _ray_session(executor, workers):
        hashed = dedup_partitioned(
            dataset,
            max_distance=max_distance,
            partitions=partitions,
            memory_budget=memory_budget,
            executor=executor,
            workers=workers,
            retries=retries,
        )
        n = hashed["samples"]
        budget = memory_budget or DEFAULT_MEMORY_BUDGET
        parts = partitions or max(
            partitions_for(n, budget), math.ceil(n * _dim(clip_files) * BYTES_PER_DIM / (budget - TASK_FLOOR))
        )
        shards = nodes.hashed_shards(ds)
        work = storage.join(
            ds.signals_dir("dedup"),
            "_work",
            "semantic-" + _fingerprint(shards, clip_files, parts, eps, clusters_k),
        )
        log.info("semantic dedup: %d samples in %d partitions (work files in %s)", n, parts, work)
        runner = _Run(work, parts, hashed["max_distance"], hashed["min_thumbnail_similarity"], run)
        splitters = _splitters(clusters_path(dataset), n, parts)
        starts, _ = runner.load(load, shards, splitters)
        runner.step(
            "rank",
            rank,
            {
                j: {
                    "range": j,
                    "starts": starts,
                    "shards": sorted(shards),
                    "hash_clusters": clusters_path(dataset),
                }
                for j in range(parts)
            },
        )
        info, semantic_sources = find_pairs(runner, ds, clip_files, splitters, starts, eps, clusters_k)
        result = _clusters(runner, starts, [f"hash-{j}" for j in range(parts)] + semantic_sources)
    summary = _write(dataset, work, parts, starts, result, hashed, info, runner, time.perf_counter() - start)
    fs, inner = storage.url_to_fs(work)
    fs.rm(inner, recursive=True)
    return summary


def find_pairs(
    runner: _Run,
    ds: Dataset,
    clip_files: list[str],
    splitters: list[str],
    starts: np.ndarray,
    eps: float,
    clusters_k: int | None,
) -> tuple[dict, list[str]]:
    """The semantic pairs of the nodes in WORK/nodes/0/J.parquet (uid-sorted ranges from `starts`) as
    edge files; returns the single path's search info and the edge sources written."""
    parts = runner.parts
    R = range(parts)
    embedded = runner.step(
        "embed",
        embed,
        {
            i: {"file": f, "splitters": splitters, "fix": semantic.clip_fix(ds)}
            for i, f in enumerate(clip_files)
        },
    )
    semantic.one_dim(ds, {s["dim"] for s in embedded if s["rows"]})
    joined = runner.step(
        "join",
        join,
        {j: {"range": j, "start": int(starts[j]), "files": list(range(len(clip_files)))} for j in R},
    )
    per_range = np.array([s["embedded"] for s in joined], np.int64)
    n = int(per_range.sum())
    k = min(n, clusters_k or semantic.default_clusters(n))
    info = {"eps": eps, "clusters": k, "embedded": n, "pairs": 0, "largest_cluster": 0, "guests": 0}
    missing = sum(s["rows"] for s in joined) - n
    if missing:
        log.warning(
            "%d of %d samples have no CLIP image embedding: they take no part in semantic dedup; run `%s`",
            missing,
            missing + n,
            semantic.clip_fix(ds),
        )
    if n < 2:
        return info, []
    fit_at = semantic.projection_sample(n, k)
    km_at, rng = semantic.kmeans_sample(n, k)
    wanted = np.union1d(fit_at, km_at if k > 1 else fit_at[:0])
    first = np.concatenate([[0], np.cumsum(per_range)])
    where = np.searchsorted(first, wanted, side="right") - 1
    runner.step("sample", sample, {j: {"range": j, "rows": wanted[where == j] - first[j]} for j in R})
    rows = np.concatenate(
        [_matrix(storage.read_parquet(shuffle.path(runner.work, "sample", 0, j)).column("emb")) for j in R]
    )
    mean, basis = semantic.fit_projection(rows[np.searchsorted(wanted, fit_at)])
    if k > 1:
        km = semantic.project(rows[np.searchsorted(wanted, km_at)], mean, basis)
        centroids = semantic.fit_centroids(km, k, rng)
    else:
        centroids = np.zeros((1, min(semantic.KMEANS_DIMS, basis.shape[1])), np.float32)
    del rows
    fitted = {"mean": mean, "basis": basis, "eps": eps, "starts": starts}
    assigned = runner.step(
        "assign",
        assign,
        {j: {**fitted, "range": j, "centroids": centroids, "margin": 2 * math.sqrt(2 * eps)} for j in R},
    )
    found = runner.step("pairs", pairs, {q: {**fitted, "part": q} for q in R})
    distinct = runner.step("distinct", distinct_edges, {j: {"range": j, "starts": starts} for j in R})
    info.update(
        pairs=int(sum(s["pairs"] for s in distinct)),
        largest_cluster=int(max(s["largest_cluster"] for s in found)),
        guests=int(sum(s["guests"] for s in assigned)),
    )
    return info, [f"semantic-{j}" for j in R]


def uid_ranges(work: str, uids: pa.Array, parts: int) -> tuple[list[str], np.ndarray]:
    """Sorted uids as the node ranges `find_pairs` reads (WORK/nodes/0/J.parquet): embeddings searched
    without a dataset around them (benchmarks, tests). Returns the splitters and range starts."""
    n = len(uids)
    cuts = [n * i // parts for i in range(1, parts)]
    splitters = [uids[c].as_py() for c in cuts]
    dest = _dest(uids, splitters)
    counts = np.bincount(dest, minlength=parts)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    for j in range(parts):
        rows = uids.slice(int(starts[j]), int(counts[j]))
        storage.write_parquet_atomic(pa.table({"uid": rows}), shuffle.path(work, "nodes", 0, j))
    return splitters, starts


def load(job: Job) -> dict:
    """A shard's node columns, scattered by uid range."""
    p = job.payload
    con = duck.connect()
    part = nodes._node_part(con, 0, nodes._own_query(con, p["shard"], p["hashes"]), p["hashes"])
    table = pa.table(
        {
            "uid": part["uid"],
            "phash": part["phash"],
            "phash_valid": part["phash_valid"],
            **{f"{name}{w}": part[name][:, w] for name in ("sha", "url") for w in (0, 1)},
            "sha_valid": part["sha_valid"],
            "url_valid": part["url_valid"],
        }
    ).select(_NODE_COLUMNS)
    per_range = shuffle.scatter(
        table, _dest(table.column("uid"), p["splitters"]), p["parts"], p["work"], "load", p["key"]
    )
    return {"rows": table.num_rows, "per_range": per_range.tolist()}


def rank(job: Job) -> dict:
    """Sort a uid range (stable, as the single path) and number it; its nodes' hash clusters, and an edge
    from each clustered node to its hash representative."""
    p = job.payload
    j, starts = p["range"], p["starts"]
    t = shuffle.gather(p["work"], "load", p["shards"], j)
    t = t.take(pc.sort_indices(t, [("uid", "ascending")]))
    gidx = np.arange(starts[j], starts[j] + t.num_rows, dtype=np.int64)
    hashed = _rows(p["hash_clusters"], int(starts[j]), t.num_rows, ["uid", "cluster_id"])
    if not hashed.column("uid").equals(t.column("uid")):
        raise CurateError(f"{p['hash_clusters']} changed while the semantic dedup ran: run it again")
    hash_label = hashed.column("cluster_id").to_numpy()
    t = t.append_column("gidx", pa.array(gidx)).append_column("hash", pa.array(hash_label))
    storage.write_parquet_atomic(t, shuffle.path(p["work"], "nodes", 0, j), compression="lz4")
    linked = hash_label != gidx
    scatter_edges(p, f"hash-{j}", gidx[linked], hash_label[linked])
    return {"rows": t.num_rows}


def embed(job: Job) -> dict:
    """A clip signal file's uids, scores and embeddings, scattered by uid range."""
    p = job.payload
    con = duck.connect()
    try:
        got = semantic.read_file(con, p["file"], p["fix"])
    finally:
        con.close()
    uid, score, values = (
        got if got is not None else (pa.array([], pa.string()), pa.array([], pa.float32()), None)
    )
    table = pa.table({"uid": uid, "score": score, "emb": _binary(values)})
    shuffle.scatter(
        table, _dest(table.column("uid"), p["splitters"]), p["parts"], p["work"], "embed", job.key
    )
    return {"rows": table.num_rows, "dim": 0 if values is None else values.shape[1]}


def join(job: Job) -> dict:
    """A range's embeddings and scores placed on its nodes (later files and rows overwrite earlier ones)."""
    p = job.payload
    j = p["range"]
    uids = storage.read_parquet(shuffle.path(p["work"], "nodes", 0, j), ["uid"]).column("uid")
    t = shuffle.gather(p["work"], "embed", [f"embed-{i}" for i in p["files"]], j)
    values = _matrix(t.column("emb"))
    at = pc.index_in(t.column("uid"), value_set=uids.combine_chunks()).to_numpy(zero_copy_only=False)
    found = ~np.isnan(at)
    target = at[found].astype(np.int64)
    vectors = np.zeros((len(uids), values.shape[1]), np.float16)
    score = np.full(len(uids), np.nan, np.float32)
    valid = np.zeros(len(uids), bool)
    vectors[target] = values[found]
    score[target] = t.column("score").to_numpy(zero_copy_only=False)[found]
    valid[target] = True
    keep = np.flatnonzero(valid)
    emb = pa.table({"gidx": keep + p["start"], "emb": _binary(vectors[keep])})
    storage.write_parquet_atomic(emb, shuffle.path(p["work"], "emb", 0, j), compression="lz4")
    storage.write_parquet_atomic(pa.table({"score": score}), shuffle.path(p["work"], "score", 0, j))
    return {"embedded": len(keep), "rows": len(uids)}


def sample(job: Job) -> dict:
    """The range's rows of the fitting samples (positions among its embedded rows)."""
    p = job.payload
    t = storage.read_parquet(shuffle.path(p["work"], "emb", 0, p["range"]), ["emb"])
    storage.write_parquet_atomic(
        t.take(pa.array(p["rows"], pa.int64())), shuffle.path(p["work"], "sample", 0, p["range"])
    )
    return {"rows": len(p["rows"])}


def assign(job: Job) -> dict:
    """Nearest and second-nearest centroid of each embedded row: the row goes to its cluster's partition
    as a member, and to its second cluster's as a guest."""
    p = job.payload
    t = storage.read_parquet(shuffle.path(p["work"], "emb", 0, p["range"]))
    proj = semantic.project(_matrix(t.column("emb")), p["mean"], p["basis"])
    labels, second = semantic.nearest_two(proj, p["centroids"], p["margin"])
    del proj
    near = np.flatnonzero(second >= 0)
    out = pa.concat_tables(
        [
            pa.table(
                {
                    "gidx": t.column("gidx"),
                    "cluster": labels,
                    "guest": np.zeros(len(labels), bool),
                    "emb": t.column("emb"),
                }
            ),
            pa.table(
                {
                    "gidx": t.column("gidx").take(pa.array(near)),
                    "cluster": second[near],
                    "guest": np.ones(len(near), bool),
                    "emb": t.column("emb").take(pa.array(near)),
                }
            ),
        ]
    )
    cluster = out.column("cluster").to_numpy()
    shuffle.scatter(out, cluster % p["parts"], p["parts"], p["work"], "members", p["range"])
    return {"guests": len(near)}


def pairs(job: Job) -> dict:
    """The in-cluster search of every cluster of this partition: pairs (a < b) sent to a's range."""
    p = job.payload
    t = shuffle.gather(p["work"], "members", range(p["parts"]), p["part"])
    g, cluster, guest = (t.column(c).to_numpy(zero_copy_only=False) for c in ("gidx", "cluster", "guest"))
    order = np.lexsort((g, cluster))  # members and guests in index order, as the single path lists them
    x16 = _matrix(t.column("emb"))
    proj = semantic.project(x16, p["mean"], p["basis"])
    bounds = np.flatnonzero(np.diff(cluster[order])) + 1
    found_a, found_b, largest = [np.empty(0, np.int64)], [np.empty(0, np.int64)], 0
    for rows in np.split(order, bounds) if len(order) else []:
        members, guests = rows[~guest[rows]], rows[guest[rows]]
        largest = max(largest, len(members))
        i, j = semantic.cluster_pairs(x16, proj, members, guests, p["eps"])
        found_a.append(np.minimum(g[i], g[j]))
        found_b.append(np.maximum(g[i], g[j]))
    a, b = shuffle.distinct_pairs(np.concatenate(found_a), np.concatenate(found_b))
    shuffle.scatter(
        pa.table({"a": a, "b": b}), shuffle.of_node(a, p["starts"]), p["parts"], p["work"], "pairs", p["part"]
    )
    return {"largest_cluster": largest, "pairs": len(a)}


def distinct_edges(job: Job) -> dict:
    """Each pair of this range's first ends once: the semantic edges, both directions."""
    p = job.payload
    t = shuffle.gather(p["work"], "pairs", range(p["parts"]), p["range"])
    a, b = shuffle.distinct_pairs(t.column("a").to_numpy(), t.column("b").to_numpy())
    scatter_edges(p, f"semantic-{p['range']}", a, b)
    return {"pairs": len(a)}


def _clusters(runner: _Run, starts: np.ndarray, edge_sources: list[str]) -> dict:
    """Components of all edges, then representatives chosen as the single semantic path chooses them."""
    began = time.perf_counter()
    last, runner.peaks["components"], resumed = components.labels(
        runner.work, edge_sources, starts, runner.run
    )
    runner.resumed += resumed
    runner.seconds["components"] = round(time.perf_counter() - began, 1)
    R = range(runner.parts)
    runner.step(
        "clustered", send_to_label, {j: {"range": j, "starts": starts, "labels": f"labels-{last}"} for j in R}
    )
    reps = runner.step("representatives", representatives, {j: {"range": j, "starts": starts} for j in R})
    return {"clusters": sum(s["clusters"] for s in reps), "rounds": last + 1}


def send_to_label(job: Job) -> dict:
    """Each clustered node's columns and score, sent to the range of its label."""
    p = job.payload
    work, j, starts = p["work"], p["range"], p["starts"]
    lab = storage.read_parquet(shuffle.path(work, p["labels"], 0, j))
    node = lab.column("node").to_numpy()
    at = pa.array(node - starts[j])
    t = storage.read_parquet(shuffle.path(work, "nodes", 0, j), [*_NODE_COLUMNS, "gidx", "hash"]).take(at)
    score = storage.read_parquet(shuffle.path(work, "score", 0, j)).column("score").take(at)
    t = t.append_column("score", score).append_column("label", lab.column("label"))
    shuffle.scatter(
        t, shuffle.of_node(lab.column("label").to_numpy(), starts), p["parts"], work, "clustered", j
    )
    return {"clustered": len(node)}


def representatives(job: Job) -> dict:
    """The clusters whose label lies in this range: representative with the highest clip_score, then the
    smallest index; kind (semantic where only a semantic edge joins the member to it) and distance."""
    p = job.payload
    t = shuffle.gather(p["work"], "clustered", range(p["parts"]), p["range"])
    label = np.unique(t.column("label").to_numpy(), return_inverse=True)[1]
    score = t.column("score").to_numpy(zero_copy_only=False)
    rep = clusters.representatives(label, _score_rank(score, len(score)), t.column("gidx").to_numpy())
    col = {c: t.column(c).to_numpy(zero_copy_only=False) for c in (*_NODE_COLUMNS[1:], "hash")}
    kind = member_kinds(col, rep)
    kind = np.where((kind != -1) & (col["hash"] != col["hash"][rep]), 3, kind).astype(np.int8)
    return scatter_members(p, t, label, rep, kind)


def _dest(uids: pa.ChunkedArray | pa.Array, splitters: list[str]) -> np.ndarray:
    keys = uids.to_numpy(zero_copy_only=False).astype(str)
    return np.searchsorted(np.asarray(splitters, dtype=str), keys, side="right")


def _binary(values: np.ndarray | None) -> pa.Array:
    """float16 rows as binary values (one per row), the form the work files carry embeddings in."""
    if values is None or len(values) == 0:
        return pa.array([], pa.binary())
    data = np.ascontiguousarray(values)
    width = data.shape[1] * data.itemsize
    offsets = np.arange(0, (len(data) + 1) * width, width, dtype=np.int32)
    return pa.Array.from_buffers(pa.binary(), len(data), [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def _matrix(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Binary embedding values back to a (rows, dim) float16 matrix."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if len(arr) == 0:
        return np.zeros((0, 0), np.float16)
    offsets = np.frombuffer(arr.buffers()[1], np.int32)[arr.offset : arr.offset + len(arr) + 1]
    data = np.frombuffer(arr.buffers()[2], np.uint8)[offsets[0] : offsets[-1]]
    return data.view(np.float16).reshape(len(arr), -1)


def _rows(path: str, start: int, count: int, columns: list[str]) -> pa.Table:
    """Rows [start, start + count) of a Parquet file, reading only the row groups that hold them."""
    fs, inner = storage.url_to_fs(path)
    tables, first, skip = [], 0, 0
    with fs.open(inner, "rb") as fh:
        f = pq.ParquetFile(fh)
        for i in range(f.num_row_groups):
            size = f.metadata.row_group(i).num_rows
            if first < start + count and first + size > start:
                skip = skip if tables else start - first
                tables.append(f.read_row_group(i, columns=columns))
            first += size
        t = pa.concat_tables(tables) if tables else f.schema_arrow.empty_table().select(columns)
    return t.slice(skip, count).combine_chunks()


def _splitters(hash_clusters: str, n: int, parts: int) -> list[str]:
    """parts - 1 uids that cut the (uid-sorted) hash clusters into equal ranges, read as a stream."""
    cuts = [n * i // parts for i in range(1, parts)]
    out, seen = [], 0
    fs, inner = storage.url_to_fs(hash_clusters)
    with fs.open(inner, "rb") as fh:
        for batch in pq.ParquetFile(fh).iter_batches(columns=["uid"], batch_size=65536):
            uids = batch.column(0)
            out += [uids[c - seen].as_py() for c in cuts if seen <= c < seen + len(uids)]
            seen += len(uids)
    return out + [""] * (parts - 1 - len(out))


def _dim(clip_files: list[str]) -> int:
    """The embedding length of the first signal file that has one (sizes the partitions; 512 if none)."""
    for path in clip_files:
        fs, inner = storage.url_to_fs(path)
        with fs.open(inner, "rb") as fh:
            for batch in pq.ParquetFile(fh).iter_batches(columns=["image_embedding"], batch_size=256):
                lengths = pc.list_value_length(batch.column(0)).drop_null()
                if len(lengths):
                    return int(lengths[0].as_py())
    return 512


def _fingerprint(shards: dict, clip_files: list[str], parts: int, eps: float, k: int | None) -> str:
    """Names the work folder: a rerun on the same inputs and settings resumes, anything else starts anew."""
    sizes = []
    for path in [p for pair in shards.values() for p in pair] + clip_files:
        fs, inner = storage.url_to_fs(path)
        sizes.append([path, fs.size(inner)])
    text = json.dumps({"parts": parts, "eps": eps, "k": k, "files": sizes})
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _write(
    dataset: str,
    work: str,
    parts: int,
    starts: np.ndarray,
    result: dict,
    hashed: dict,
    info: dict,
    runner: _Run,
    seconds: float,
) -> dict:
    """clusters.parquet range by range (index order = uid order), and the single path's summary."""
    out = clusters_path(dataset)
    kinds = dict.fromkeys(DUPLICATE_KINDS, 0)
    samples = 0
    fs, inner = storage.url_to_fs(out)
    target = (
        f"{inner.rpartition('/')[0]}/.tmp-{os.getpid()}-clusters.parquet" if storage.is_local(fs) else inner
    )
    with fs.open(target, "wb") as fh, pq.ParquetWriter(fh, CLUSTERS_SCHEMA, compression="zstd") as writer:
        for j in range(parts):
            table = _range_rows(work, parts, j, int(starts[j]))
            for row in pc.value_counts(table.column("duplicate_kind").drop_null()).to_pylist():
                kinds[row["values"]] += row["counts"]
            samples += table.num_rows
            writer.write_table(table)
    if target != inner:
        os.replace(target, inner)
    summary = {
        "samples": samples,
        "clusters": int(result["clusters"]),
        "duplicates": int(sum(kinds.values())),
        "duplicates_by_kind": kinds,
        "duplicates_of_against": 0,
        "against": [],
        "max_distance": hashed["max_distance"],
        "search": hashed["search"],
        "seconds": round(seconds, 3),
        "semantic": info,
        "min_thumbnail_similarity": hashed["min_thumbnail_similarity"],
        "partitions": {
            "count": parts,
            "component_rounds": result["rounds"],
            "peak_task_rss_mb": max(runner.peaks.values()),
            "peak_task_rss_mb_by_step": runner.peaks,
            "seconds_by_step": runner.seconds,
            "resumed_tasks": runner.resumed,
            "hash": hashed["partitions"],
        },
    }
    storage.write_json_atomic(summary, sidecar(Dataset(dataset).signals_dir("dedup"), "summary.json"))
    log.info(
        "semantic dedup: %d duplicates in %d clusters (%.1f s, %d partitions)",
        summary["duplicates"],
        summary["clusters"],
        seconds,
        parts,
    )
    return summary
