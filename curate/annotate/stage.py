"""`curate annotate`: one job per (signal, shard), run by curate.executor, resumable and refreshable.

Each job reads only the shard columns its signal needs, in batches of `batch_size` rows (bounded
memory however large the shard), and writes DATASET/signals/<signal>/NNNNN.parquet atomically with
exactly one row per shard row, in shard order. The executor then writes .curate/NNNNN.stats.json beside it:
its presence marks the job done. The marker records what the signal was computed from (the shard's
size in bytes, the signal's version, and the language backend for `language`); when that changed (a
shard rewritten by `download --retry-failed` or a takedown purge, a new curate, another backend) the
job runs again.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from curate import storage
from curate.annotate.alt_text import ALT_TEXT_COLUMNS, alt_text_signal
from curate.annotate.caption_signals import CAPTION_COLUMNS, caption_signal
from curate.annotate.clip import (  # torch loads lazily
    CLIP_COLUMNS,
    clip_signal,
    job_resources,
    output_schema,
)
from curate.annotate.concepts import (
    CONCEPTS_COLUMNS,
    concepts_schema,
    concepts_signal,
    write_entries_table,
)
from curate.annotate.image_signals import (
    HASHES_COLUMNS,
    IMAGE_COLUMNS,
    hashes_signal,
    image_signal,
)
from curate.annotate.language import LANGUAGE_COLUMNS, check_model, language_signal
from curate.annotate.nsfw import (  # onnxruntime loads lazily
    NSFW_COLUMNS,
    model_path,
    nsfw_signal,
)
from curate.annotate.options import LANGUAGE_BACKENDS, Options
from curate.concepts.entries import load_entries
from curate.dataset import Dataset, stats_path
from curate.errors import CurateError
from curate.executor import Job, RunSummary, execute
from curate.extras import MissingExtraError, require
from curate.schema import OPT_IN_SIGNALS, SIGNAL_NAMES, SIGNAL_SCHEMAS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Signal:
    """A per-shard signal: the shard columns it reads and a function from a batch of rows to its rows."""

    name: str  # a curate.schema.SIGNAL_NAMES entry
    columns: tuple[str, ...]
    compute: Callable[[pa.Table, Options], tuple[pa.Table, dict]]
    version: int = 1  # bump when the values change for the same input: stored signals are then recomputed
    make_schema: Callable[[Options], pa.Schema] | None = None  # when the schema depends on the options
    batch_rows: int | None = None  # rows per batch, not options.batch_size (text signals amortize set-up)
    resources: Callable[[Options], dict[str, float] | None] | None = None  # what a job asks of a Ray cluster

    @property
    def schema(self) -> pa.Schema:
        """The documented schema of the signal's files (curate.schema.SIGNAL_SCHEMAS)."""
        return SIGNAL_SCHEMAS[self.name]

    def output_schema(self, opts: Options) -> pa.Schema:
        return self.make_schema(opts) if self.make_schema else self.schema


_IMPLEMENTED = (
    Signal("image", IMAGE_COLUMNS, image_signal),
    Signal("hashes", HASHES_COLUMNS, hashes_signal, version=2),  # v2: letterbox cut
    # v2: fastText reads DataComp's input (newlines replaced, other whitespace kept)
    Signal("language", LANGUAGE_COLUMNS, language_signal, version=2),
    Signal("caption", CAPTION_COLUMNS, caption_signal),
    Signal("alt_text", ALT_TEXT_COLUMNS, alt_text_signal),
    Signal("nsfw", NSFW_COLUMNS, nsfw_signal),
    # 65,536 captions per batch: each batch builds the entry hash tables once (~50 ms at 500,000 entries)
    Signal("concepts", CONCEPTS_COLUMNS, concepts_signal, make_schema=concepts_schema, batch_rows=65_536),
    Signal("clip", CLIP_COLUMNS, clip_signal, make_schema=output_schema, resources=job_resources),
)
# In curate.schema.SIGNAL_NAMES order, the order the CLI lists them in (a name outside it fails at import).
SIGNALS: dict[str, Signal] = {
    s.name: s for s in sorted(_IMPLEMENTED, key=lambda s: SIGNAL_NAMES.index(s.name))
}


@dataclass(frozen=True)
class SignalTask:
    signal: str
    shard: str
    output: str
    source: str  # what the output is computed from; recorded in the marker
    options: Options


def annotate_shard(job: Job) -> dict:
    """Executor job: compute one signal for one shard and write it atomically; returns its stats."""
    task: SignalTask = job.payload
    signal = SIGNALS[task.signal]
    parts: list[pa.Table] = []
    stats: dict = {}
    rows_in = 0
    start = time.perf_counter()
    for batch in _read_batches(task.shard, signal.columns, signal.batch_rows or task.options.batch_size):
        rows_in += batch.num_rows
        out, batch_stats = signal.compute(pa.Table.from_batches([batch]), task.options)
        parts.append(out)
        for key, value in batch_stats.items():
            stats[key] = _add(stats.get(key), value)
    table = pa.concat_tables(parts) if parts else signal.output_schema(task.options).empty_table()
    if table.num_rows != rows_in:  # never write a signal that silently misses rows
        raise RuntimeError(f"{signal.name} produced {table.num_rows} rows for {rows_in} shard rows")
    storage.write_parquet_atomic(table, task.output)
    stats["seconds"] = round(time.perf_counter() - start, 4)
    return {"source": task.source, signal.name: stats}


def _add(total, value):
    if isinstance(value, dict):
        merged = dict(total or {})
        for key, v in value.items():
            merged[key] = merged.get(key, 0) + v
        return merged
    return (total or 0) + value


def _read_batches(path: str, columns: tuple[str, ...], batch_size: int):
    fs, inner = storage.url_to_fs(path)
    with fs.open(inner, "rb") as fh:
        pf = pq.ParquetFile(fh)
        missing = [c for c in columns if c not in pf.schema_arrow.names]
        if missing:
            raise CurateError(
                f"{path} lacks column(s) {', '.join(missing)}: it is not a curate download shard "
                "(curate.schema.SHARD_SCHEMA); write shards with `curate download`"
            )
        yield from pf.iter_batches(batch_size=batch_size, columns=list(columns))


def resolve_signals(signals: list[str] | tuple[str, ...] | str | None) -> list[str]:
    """Signal names in canonical order; None means all but the opt-in ones (which need a model file)."""
    if signals is None:
        return [s for s in SIGNALS if s not in OPT_IN_SIGNALS]
    names = [s.strip() for s in (signals.split(",") if isinstance(signals, str) else signals) if s.strip()]
    unknown = [s for s in names if s not in SIGNALS]
    if unknown or not names:
        raise CurateError(
            f"unknown signal(s) {', '.join(unknown) or '(none given)'}: choose from {', '.join(SIGNALS)}"
        )
    return [s for s in SIGNALS if s in names]


def plan(ds: Dataset, names: list[str], opts: Options) -> list[Job]:
    """One job per (signal, shard); markers whose recorded source no longer matches are removed."""
    jobs = []
    for shard in ds.shard_paths():
        key = Dataset.shard_key(shard)
        fs, inner = storage.url_to_fs(shard)
        size = fs.size(inner)
        for name in names:
            out_dir = ds.signals_dir(name)
            source = f"shard_bytes={size};v={SIGNALS[name].version}"
            if opts.fingerprint(name):
                source += f";{opts.fingerprint(name)}"
            marker = stats_path(out_dir, key)
            _drop_stale_marker(marker, source)
            task = SignalTask(name, shard, storage.join(out_dir, f"{key}.parquet"), source, opts)
            signal = SIGNALS[name]
            resources = signal.resources(opts) if signal.resources else None
            jobs.append(Job(f"{name}/{key}", marker, task, resources))
    return jobs


def _drop_stale_marker(stats_path: str, source: str) -> None:
    if not storage.exists(stats_path):
        return
    try:
        recorded = storage.read_json(stats_path).get("source")
    except (OSError, ValueError):
        recorded = None
    if recorded != source:
        log.info("%s was computed from %s, now %s: recomputing", stats_path, recorded, source)
        fs, inner = storage.url_to_fs(stats_path)
        fs.rm(inner)


def annotate(
    dataset: str,
    *,
    signals: list[str] | tuple[str, ...] | str | None = None,
    executor: str = "local",
    workers: int | None = None,
    retries: int = 2,
    language_backend: str = "fasttext",
    language_model: str | None = None,
    batch_size: int = 512,
    nsfw_batch_size: int = 32,
    clip_model: str | None = None,
    clip_checkpoint: str | None = None,
    clip_tokenizer: str | None = None,
    device: str = "auto",
    clip_precision: str = "auto",
    clip_batch_size: int = 64,
    entries: str | None = None,
) -> RunSummary:
    """Compute the chosen signals per download shard.

    Default: all; nsfw only if the [nsfw] extra is installed.

    Writes DATASET/signals/<name>/NNNNN.parquet (docs/FORMAT.md, section "signals") and a run summary
    at DATASET/signals/annotate.summary.json. Finished (signal, shard) pairs are skipped.
    """
    names = resolve_signals(signals)
    if language_backend not in LANGUAGE_BACKENDS:
        raise CurateError(
            f"unknown language backend {language_backend!r}: use one of {', '.join(LANGUAGE_BACKENDS)}"
        )
    if language_model is not None:
        if language_backend != "fasttext":
            raise CurateError(
                "--language-model names a fastText lid.176 file: use it with --language-backend fasttext"
            )
        check_model(language_model)  # a wrong file fails now, naming the accepted ones
    if batch_size < 1 or nsfw_batch_size < 1 or clip_batch_size < 1:
        raise CurateError("batch sizes must be positive")
    clip_sha256 = ""
    if "clip" in names:  # one clear error now rather than one per shard
        from curate.annotate.clip import check_options

        clip_sha256 = check_options(clip_checkpoint, clip_model, clip_tokenizer, device, clip_precision)
        clip_checkpoint = os.path.abspath(clip_checkpoint)  # workers may run elsewhere (Ray)
        clip_tokenizer = clip_tokenizer and os.path.abspath(clip_tokenizer)
    if entries and "://" not in entries:
        entries = os.path.abspath(entries)  # workers may run elsewhere (Ray)
    concept_list = load_entries(entries) if "concepts" in names else None  # a bad file fails before any job
    if "alt_text" in names:
        require("ftfy", "laion")  # the install hint now rather than once per shard
    if "nsfw" in names:
        try:
            model_path()  # fail now, with the install hint, rather than once per shard
        except MissingExtraError as exc:
            if signals is not None:
                raise
            log.warning("skipping the nsfw signal (%s)", exc)  # "all signals" means all that can run here
            names.remove("nsfw")
    ds = Dataset(dataset)
    with ds.lock("annotate"):
        if not ds.shard_paths():
            raise CurateError(
                f"{ds.shards_dir} holds no shards: run `curate download MANIFEST -o {dataset}` first"
            )
        cpus = os.cpu_count() or 1
        threads = max(1, cpus // (workers or cpus)) if executor == "local" else 1
        opts = Options(
            language_backend=language_backend,
            language_model=language_model,
            batch_size=batch_size,
            nsfw_batch_size=nsfw_batch_size,
            nsfw_threads=threads,
            clip_model=clip_model,
            clip_checkpoint=clip_checkpoint,
            clip_sha256=clip_sha256,
            clip_tokenizer=clip_tokenizer,
            clip_device=device,
            clip_precision=clip_precision,
            clip_batch_size=clip_batch_size,
            clip_threads=threads,
            concept_entries=entries,
            concept_entries_sha256=concept_list.sha256 if concept_list else "",
        )
        if concept_list is not None:
            write_entries_table(ds, concept_list)
        jobs = plan(ds, names, opts)
        summary = execute(
            annotate_shard, jobs, executor=executor, workers=workers, retries=retries, desc="annotate"
        )
        summary.stats.pop("source", None)  # per-shard marker detail, meaningless summed
        storage.write_json_atomic(
            summary.to_dict(), storage.join(ds.path("signals"), "annotate.summary.json")
        )
    return summary
