"""`download()`: manifest parts -> DATASET/shards, one job per part, resumable; and `--retry-failed`."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import uuid
from collections import Counter

import pyarrow.parquet as pq

from curate import storage
from curate.dataset import Dataset, sidecar, stats_files, stats_path
from curate.download.config import DownloadConfig
from curate.download.progress import ProgressMonitor
from curate.download.shard import ShardTask, close_fetchers, download_shard
from curate.errors import CurateError
from curate.executor import Job, RunSummary, execute
from curate.schema import ERROR_CLASSES

log = logging.getLogger(__name__)

# Classes that a later attempt can plausibly fix; the default of --retry-failed.
TRANSIENT_CLASSES = (
    "dns",
    "connect",
    "timeout",
    "http_5xx",
    "http_429",
    "protocol_error",
    "host_unreachable",
)
SOURCE_FILE = "source.json"
SUMMARY_FILE = "summary.json"


def download(
    manifest: str,
    dataset: str,
    config: DownloadConfig | None = None,
    *,
    executor: str = "local",
    workers: int | None = None,
    retry_failed: bool = False,
    error_classes: list[str] | tuple[str, ...] | None = None,
    retries: int = 2,
    optout_files: tuple[str, ...] = (),
) -> RunSummary:
    """Download every manifest row into DATASET/shards/NNNNN.parquet (shard N from manifest part N).

    MANIFEST is a manifest folder (part-*.parquet), a dataset folder holding one, a single manifest
    parquet, or a raw URL list (normalized into DATASET/manifest first). Finished shards are skipped.
    With `retry_failed`, only rows of existing shards whose error_class is in `error_classes` (default
    TRANSIENT_CLASSES) are fetched again, and only their shards are rewritten.
    """
    config = config or DownloadConfig()
    ds = Dataset(dataset)
    with ds.lock("download"):
        parts = resolve_manifest(manifest, ds)
        takedown = ds.takedown_path if storage.exists(ds.takedown_path) else None
        optout_files = tuple(optout_files) + tuple(config.opt_out)
        progress_dir = tempfile.mkdtemp(prefix="curate-progress-")
        run_id = uuid.uuid4().hex
        try:
            if retry_failed:
                return _retry(
                    ds,
                    parts,
                    config,
                    executor,
                    workers,
                    retries,
                    error_classes,
                    takedown,
                    optout_files,
                    progress_dir,
                    run_id,
                )
            jobs = []
            for index, part in enumerate(parts):
                key = part_key(part, index)
                shard = storage.join(ds.shards_dir, f"{key}.parquet")
                stats = stats_path(ds.shards_dir, key)
                task = ShardTask(
                    part,
                    shard,
                    stats,
                    config,
                    takedown,
                    optout_files,
                    progress_path=f"{progress_dir}/{key}.json",
                    run_id=run_id,
                )
                jobs.append(Job(key, stats, task))
            total = sum(_rows(p) for p in parts)
            done_rows = sum(_marker_rows(j.stats_path) for j in jobs)
            with ProgressMonitor(progress_dir, total, done_rows) as monitor:
                summary = execute(
                    download_shard,
                    jobs,
                    executor=executor,
                    workers=workers,
                    retries=retries,
                    desc="download shards",
                )
            return finish_run(ds, summary, monitor.diagnosis)
        finally:
            close_fetchers()
            shutil.rmtree(progress_dir, ignore_errors=True)


def part_key(path: str, index: int) -> str:
    """'part-00003.parquet' -> '00003'; other names get their position in the sorted list."""
    stem = path.rpartition("/")[2].split(".")[0]
    digits = stem.rpartition("-")[2]
    return digits if digits.isdigit() else f"{index:05d}"


def resolve_manifest(manifest: str, ds: Dataset) -> list[str]:
    """The manifest parts to download, building DATASET/manifest from a raw URL list when needed."""
    if not storage.exists(manifest):
        raise CurateError(
            f"manifest {manifest} does not exist: pass a manifest folder, a dataset folder or "
            "a URL list (txt, csv, tsv, json, jsonl, parquet)"
        )
    parts = _manifest_parts(manifest)
    if parts is None:
        parts = _manifest_parts(storage.join(manifest, "manifest")) if _is_dir(manifest) else None
    fs, inner = storage.url_to_fs(manifest)
    source = {"manifest": os.path.abspath(inner) if storage.is_local(fs) else str(manifest)}
    if parts is None:
        # A raw URL list: normalize it once into DATASET/manifest, reused when the same list is given again.
        if not storage.exists(sidecar(ds.manifest_dir, SUMMARY_FILE)):
            from curate.manifest import build_manifest

            log.info("%s is not a manifest: normalizing it into %s", manifest, ds.manifest_dir)
            build_manifest([manifest], ds.manifest_dir, overwrite=True)
        parts = ds.manifest_parts()
        source["normalized_into"] = ds.manifest_dir
    if not parts:
        raise CurateError(f"{manifest} holds no manifest rows: run `curate manifest` on your URL list first")
    _check_source(ds, source)
    return parts


def _is_dir(path: str) -> bool:
    fs, inner = storage.url_to_fs(path)
    return fs.isdir(inner)


def _manifest_parts(path: str) -> list[str] | None:
    """Parquet files with the manifest columns at `path` (a folder or one file), else None."""
    if _is_dir(path):
        files = storage.list_files(path, ".parquet")
    elif str(path).endswith(".parquet"):
        files = [path]
    else:
        return None
    if not files:
        return None
    fs, inner = storage.url_to_fs(files[0])
    with fs.open(inner, "rb") as fh:
        names = set(pq.ParquetFile(fh).schema_arrow.names)
    return files if {"uid", "url", "caption"} <= names else None


def _check_source(ds: Dataset, source: dict) -> None:
    """Refuse to mix shards from two different manifests in one dataset."""
    path = sidecar(ds.shards_dir, SOURCE_FILE)
    if storage.exists(path):
        previous = storage.read_json(path)
        if previous.get("manifest") != source["manifest"]:
            raise CurateError(
                f"{ds.shards_dir} holds shards downloaded from {previous.get('manifest')}, not "
                f"{source['manifest']}: pass that manifest again to resume, or use a new dataset folder"
            )
    else:
        storage.write_json_atomic(source, path)


def _rows(path: str) -> int:
    fs, inner = storage.url_to_fs(path)
    with fs.open(inner, "rb") as fh:
        return pq.ParquetFile(fh).metadata.num_rows


def _marker_rows(marker: str) -> int:
    if not storage.exists(marker):
        return 0
    try:
        return int(storage.read_json(marker).get("rows", 0))
    except (OSError, ValueError):
        return 0


def _retry(
    ds: Dataset,
    parts: list[str],
    config: DownloadConfig,
    executor: str,
    workers: int | None,
    retries: int,
    error_classes,
    takedown,
    optout_files,
    progress_dir: str,
    run_id: str,
) -> RunSummary:
    classes = tuple(error_classes or TRANSIENT_CLASSES)
    unknown = sorted(set(classes) - set(ERROR_CLASSES))
    if unknown:
        raise CurateError(
            f"unknown error class(es) {', '.join(unknown)}: choose from {', '.join(ERROR_CLASSES)}"
        )
    token = "-".join(sorted(classes))
    marker_dir = storage.join(ds.shards_dir, f".retry-{hashlib.sha1(token.encode()).hexdigest()[:10]}")
    jobs = []
    to_retry = 0
    for index, part in enumerate(parts):
        key = part_key(part, index)
        marker = stats_path(ds.shards_dir, key)
        if not storage.exists(marker):
            continue  # not downloaded yet: a plain run does it
        counts = storage.read_json(marker).get("error_class", {})
        n = sum(counts.get(c, 0) for c in classes)
        if n == 0:
            continue
        to_retry += n
        task = ShardTask(
            None,
            storage.join(ds.shards_dir, f"{key}.parquet"),
            marker,
            config,
            takedown,
            optout_files,
            progress_path=f"{progress_dir}/{key}.json",
            retry_classes=classes,
            run_id=run_id,
        )
        jobs.append(Job(key, storage.join(marker_dir, f"{key}.json"), task))
    log.info("retrying %d rows (%s) in %d shards", to_retry, ", ".join(classes), len(jobs))
    total = sum(_marker_rows(j.payload.stats_path) for j in jobs)
    with ProgressMonitor(progress_dir, total, 0) as monitor:
        summary = execute(
            download_shard, jobs, executor=executor, workers=workers, retries=retries, desc="retry shards"
        )
    if not summary.failed:
        fs, inner = storage.url_to_fs(marker_dir)
        if fs.exists(inner):
            fs.rm(inner, recursive=True)
    summary.stats["retried_rows"] = to_retry
    return finish_run(ds, summary, monitor.diagnosis)


def dataset_totals(ds: Dataset) -> dict:
    """Rows, statuses and error classes of the whole dataset, summed from every shard's marker."""
    total: Counter = Counter()
    errors: Counter = Counter()
    rows = 0
    for path in stats_files(ds.shards_dir):
        stats = storage.read_json(path)
        total.update(stats.get("status", {}))
        errors.update(stats.get("error_class", {}))
        rows += int(stats.get("rows", 0))
    return {"rows": rows, "status": dict(total), "error_class": dict(errors)}


def finish_run(
    ds: Dataset, summary: RunSummary, diagnosis: str | None, engine: str | None = None
) -> RunSummary:
    """Write DATASET/shards/.curate/summary.json: this run's summary plus the whole dataset's totals."""
    if diagnosis:
        summary.stats["diagnosis"] = diagnosis
    summary.stats["dataset"] = dataset_totals(ds)
    extra = {"engine": engine} if engine else {}
    storage.write_json_atomic(
        {**summary.to_dict(), "dataset": summary.stats["dataset"], **extra},
        sidecar(ds.shards_dir, SUMMARY_FILE),
    )
    return summary
