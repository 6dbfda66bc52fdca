"""Connected components of a partitioned edge list: min-label propagation, one task per node range.

Each edge is stored twice, under the range of either end. A round's task for range j lowers its nodes'
labels by the messages of the previous round, then finds the components of its own edges locally
(scipy) and sends every node of a local component that component's smallest known label. Labels only
ever take the value of a node of the same component, and the smallest node keeps its own, so a round in
which no label moves is the fixpoint: every node labelled with its component's smallest node index, the
same labels as union-find over the whole list. Local components carry a label across many edges at
once, so rounds stay few (each partition crossing costs one); no task holds more than its range.
"""

from __future__ import annotations

import functools
import logging

import numpy as np
import pyarrow as pa
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from curate import storage
from curate.dedup import shuffle
from curate.executor import Job, execute

log = logging.getLogger(__name__)

MAX_ROUNDS = 1000


def labels(work: str, edge_sources: list[str], starts: np.ndarray, run: dict) -> tuple[int, float, int]:
    """Run rounds until no label moves; returns the last round (its labels: WORK/labels-R/0/J.parquet),
    the largest peak RSS (MB) its tasks reported and how many tasks an earlier run had finished."""
    parts = len(starts)
    peak, resumed = 0.0, 0
    for rnd in range(MAX_ROUNDS):
        jobs = [
            Job(
                key=f"labels-{rnd}-{j}",
                stats_path=storage.join(work, "_done", f"labels-{rnd}-{j}.json"),
                payload={"work": work, "range": j, "round": rnd, "edges": edge_sources, "starts": starts},
            )
            for j in range(parts)
        ]
        resumed += execute(
            functools.partial(shuffle.measured, propagate),
            jobs,
            desc=f"components, round {rnd + 1}",
            strict=True,
            **run,
        ).skipped
        stats = [storage.read_json(job.stats_path) for job in jobs]
        changed = sum(s["changed"] for s in stats)
        peak = max([peak, *(s["peak_rss_mb"] for s in stats)])
        log.info("components round %d: %d labels lowered", rnd + 1, changed)
        if rnd > 0 and changed == 0:
            return rnd, peak, resumed
    raise RuntimeError(f"connected components did not settle in {MAX_ROUNDS} rounds")


def propagate(job: Job) -> dict:
    p = job.payload
    work, j, rnd, starts = p["work"], p["range"], p["round"], p["starts"]
    parts = len(starts)
    edges = shuffle.gather(work, "edges", p["edges"], j)
    a, b = edges.column("a").to_numpy(), edges.column("b").to_numpy()
    if rnd == 0:
        nodes = np.unique(a)
        label, changed = nodes.copy(), 0
    else:
        old = storage.read_parquet(shuffle.path(work, f"labels-{rnd - 1}", 0, j))
        nodes, label = old.column("node").to_numpy(), old.column("label").to_numpy().copy()
        msg = shuffle.gather(work, f"messages-{rnd - 1}", range(parts), j)
        at = np.searchsorted(nodes, msg.column("node").to_numpy())
        before = label.copy()
        np.minimum.at(label, at, msg.column("label").to_numpy())
        changed = int((label < before).sum())
    storage.write_parquet_atomic(
        pa.table({"node": nodes, "label": label}),
        shuffle.path(work, f"labels-{rnd}", 0, j),
        compression="lz4",
    )

    local, inverse = np.unique(np.concatenate([a, b]), return_inverse=True)
    n = len(local)
    graph = coo_matrix((np.ones(len(a), np.int8), (inverse[: len(a)], inverse[len(a) :])), shape=(n, n))
    _, comp = connected_components(graph.tocsr(), directed=False)
    known = np.full(n, np.iinfo(np.int64).max, np.int64)
    mine = np.searchsorted(local, nodes)  # every node of this range is an edge's first end
    known[mine] = label
    best = np.full(comp.max() + 1 if n else 0, np.iinfo(np.int64).max, np.int64)
    np.minimum.at(best, comp, known)
    offer = best[comp]
    send = offer < known  # this range's nodes that already hold the offer need no message
    msg = pa.table({"node": local[send], "label": offer[send]})
    shuffle.scatter(msg, shuffle.of_node(local[send], starts), parts, work, f"messages-{rnd}", j)
    return {"changed": changed, "messages": int(send.sum())}
