"""The partitioned dedup (curate.dedup.partitioned) on a local 2-CPU Ray: the same clusters, representatives
and summary as the single-process `curate dedup`, for any partition count."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from curation_data import Sample, encode, make_photo, transformed_copy, write_dataset

from curate.cli import main
from curate.dataset import sidecar
from curate.dedup import clusters, components, dedup, shuffle
from curate.dedup.partitioned import dedup_partitioned, partitions_for


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    """Planted duplicates of every kind, spread over five shards: byte copies (one of a near copy), a
    shared URL, transformed re-uploads (one larger than its source), chains of re-uploads of re-uploads."""
    root = str(tmp_path_factory.mktemp("partitioned") / "ds")
    rng = np.random.default_rng(11)
    photos = [make_photo(i) for i in range(40)]
    samples = [
        Sample(f"https://site.example/p{i}.jpg", f"photo {i}", encode(im)) for i, im in enumerate(photos)
    ]
    samples += [Sample(f"https://mirror{m}.example/a.jpg", f"mirror {m}", samples[0].image) for m in range(3)]
    samples.append(Sample(samples[1].url, "another caption for one", encode(photos[1], quality=70)))
    for i in range(10, 25):
        data = transformed_copy(photos[i], rng) if i != 10 else encode(photos[i].resize((512, 512)))
        samples.append(Sample(f"https://reupload.example/{i}.jpg", f"reupload {i}", data))
    samples.append(Sample("https://copy.example/r12.jpg", "copy of a reupload", samples[-13].image))
    for i in range(30, 34):  # a chain: each copy made from the previous copy
        img = photos[i]
        for step in range(3):
            img = img.resize((img.width - 4, img.height - 4)).crop((1, 1, img.width - 5, img.height - 5))
            samples.append(Sample(f"https://chain.example/{i}/{step}.jpg", f"chain {i} {step}", encode(img)))
    samples.append(Sample("https://gone.example/x.jpg", "a failed download", None))
    write_dataset(root, samples, per_shard=20)
    return root


def _single(root: str) -> tuple[pa.Table, dict]:
    summary = dedup(root)
    return pq.read_table(f"{root}/signals/dedup/clusters.parquet"), summary


def _same_summary(single: dict, part: dict) -> None:
    assert {k: v for k, v in part.items() if k not in ("seconds", "partitions")} == {
        k: v for k, v in single.items() if k != "seconds"
    }


def test_partitioned_dedup_on_ray_equals_the_single_process_path(pool, local_ray):
    expected, single = _single(pool)
    assert single["duplicates_by_kind"]["exact"] >= 3 and single["duplicates_by_kind"]["url"] == 1
    assert single["duplicates_by_kind"]["near"] >= 20  # the pool exercises every kind
    for parts in (1, 4):
        summary = dedup_partitioned(pool, partitions=parts, executor="ray")
        got = pq.read_table(f"{pool}/signals/dedup/clusters.parquet")
        assert got.schema == expected.schema
        assert got.to_pylist() == expected.to_pylist()  # same rows, same order: clusters and representatives
        _same_summary(single, summary)
        assert summary["partitions"]["count"] == parts and summary["partitions"]["peak_task_rss_mb"] > 0
        on_disk = json.loads(Path(sidecar(f"{pool}/signals/dedup", "summary.json")).read_text())
        assert on_disk["duplicates"] == single["duplicates"]
        assert not os.listdir(f"{pool}/signals/dedup/_work")  # work files removed once the result is written
    chain = [r for r in expected.to_pylist() if r["duplicate_kind"] == "near"]
    assert len({r["cluster_id"] for r in chain}) < len(chain)  # some clusters hold several near copies


def test_a_killed_run_resumes_from_its_finished_tasks(pool, local_ray):
    """SIGKILL a partitioned run (local pool) once some steps are done; the rerun (on Ray) skips every
    finished task and writes the single path's result."""
    expected, _ = _single(pool)
    code = (
        f"from curate.dedup.partitioned import dedup_partitioned; dedup_partitioned({pool!r}, partitions=3, "
        "executor='local', workers=2)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True, stderr=subprocess.DEVNULL)
    work = Path(pool, "signals", "dedup", "_work")
    deadline = time.monotonic() + 120
    try:
        while (
            not list(work.glob("*/_done/exact-*.json"))
            and time.monotonic() < deadline
            and proc.poll() is None
        ):
            time.sleep(0.1)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL  # killed mid-run, not finished
    done = [p for p in work.glob("*/_done/*.json") if not p.name.startswith(".tmp-")]  # not a killed write
    steps = [p.name.split("-")[0] for p in done]
    assert steps.count("rank") == 3 and steps.count("exact") >= 1  # whole steps and part of one were done
    summary = dedup_partitioned(pool, partitions=3, executor="ray")
    assert summary["partitions"]["resumed_tasks"] == len(done)
    assert pq.read_table(f"{pool}/signals/dedup/clusters.parquet").to_pylist() == expected.to_pylist()
    assert not list(work.iterdir())


def test_components_settle_on_each_components_smallest_node(tmp_path, local_ray):
    """Long chains whose nodes alternate between ranges need many rounds; the labels still equal the
    single-process union-find's components, each labelled by its smallest node."""
    rng = np.random.default_rng(4)
    n, parts = 3000, 5
    perm = rng.permutation(n)
    chain_a, chain_b = perm[:-1:3], perm[1::3]  # paths through a third of the nodes, in random order
    a = np.concatenate([chain_a[:-1], rng.integers(0, n, 400)])
    b = np.concatenate([chain_a[1:], rng.integers(0, n, 400)])
    a, b = np.concatenate([a, chain_b[:-1]]), np.concatenate([b, chain_b[1:]])
    starts = np.arange(parts, dtype=np.int64) * (n // parts)
    work = str(tmp_path / "work")
    ea, eb = np.concatenate([a, b]), np.concatenate([b, a])
    shuffle.scatter(pa.table({"a": ea, "b": eb}), shuffle.of_node(ea, starts), parts, work, "edges", "test")
    last, _, _ = components.labels(work, ["test"], starts, {"executor": "ray", "workers": 2, "retries": 0})
    assert last >= 3
    got = pa.concat_tables([pq.read_table(shuffle.path(work, f"labels-{last}", 0, j)) for j in range(parts)])
    labels = clusters.components(n, a, b)
    smallest = np.full(n, n, np.int64)
    np.minimum.at(smallest, labels, np.arange(n))
    node = got.column("node").to_numpy()
    assert sorted(node) == sorted(set(a) | set(b))
    assert (got.column("label").to_numpy() == smallest[labels[node]]).all()


def test_cli_partitioned_by_memory_budget(pool, local_ray, capsys):
    expected, _ = _single(pool)
    rows = sum(pq.read_metadata(p).num_rows for p in Path(pool, "signals", "hashes").glob("*.parquet"))
    assert main(["dedup", pool, "--executor", "ray", "--memory-budget", "0.5G"]) == 0
    parts = partitions_for(rows, 1 << 29)
    assert f"partitioned: {parts} partitions" in capsys.readouterr().out
    assert pq.read_table(f"{pool}/signals/dedup/clusters.parquet").to_pylist() == expected.to_pylist()
    # the budget sets the partition count: 10M samples need more partitions in 1 GB than in 4 GB
    assert partitions_for(10_000_000, 1 << 30) > partitions_for(10_000_000, 1 << 32) > 1


@pytest.mark.parametrize(
    "argv, problem",
    [
        (["--executor", "ray", "--against", "other"], "does not take --against"),
        (["--partitions", "0"], "--partitions must be at least 1"),
        (["--memory-budget", "100M"], "leaves no room for data"),
    ],
)
def test_cli_refuses_what_the_partitioned_path_does_not_do(pool, argv, problem, capsys):
    assert main(["dedup", pool, *argv]) != 0
    assert problem in capsys.readouterr().err


def test_cli_names_a_bad_memory_budget(pool, capsys):
    with pytest.raises(SystemExit):
        main(["dedup", pool, "--memory-budget", "lots"])
    assert "'lots' is not a size" in capsys.readouterr().err
