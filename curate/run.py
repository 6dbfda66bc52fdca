"""`curate run RECIPE`: the whole chain, stage by stage, from one TOML recipe.

A recipe's tables configure the stages (docs/FORMAT.md, "Recipes"):

    [input]     dataset = "PATH or s3://...", urls = [...] and/or crawl = [...],
                url_col, caption_col, keep_cols
    [download]  any DownloadConfig field (image_size, resize_mode, allow_networks, ...)
    [annotate]  any annotate() option by name: signals = [...], language_backend, language_model = "PATH",
                clip_model, clip_checkpoint = "PATH", device, entries = "PATH" (the concepts signal's
                entry list; that signal runs when the recipe has [balance])
    [dedup]     max_distance, against = [...]
    [overlap]   benchmarks = { NAME = "PATH" }
    [filter]    the decision thresholds (curate.filters)
    [export]    format = "parquet" | "webdataset", samples_per_shard
    [train]     any TrainConfig field; trains on the export when present

Every stage is resumable or idempotent, so rerunning the same command after an interruption finishes
the job without redoing finished shards.
"""

from __future__ import annotations

import inspect
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from curate import storage
from curate.dataset import Dataset, sidecar
from curate.errors import CurateError
from curate.recipe import Recipe, load_recipe
from curate.schema import STAGES
from curate.settings import from_table

log = logging.getLogger(__name__)


@dataclass
class PipelineRun:
    """What a run did: per stage its summary and wall time."""

    dataset: str
    recipe: str
    stages: dict[str, dict] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Context:
    recipe: Recipe
    dataset: str
    executor: str
    workers: int | None

    def table(self, name: str) -> dict[str, Any]:
        value = self.recipe.raw.get(name, {})
        if not isinstance(value, dict):
            raise CurateError(f"recipe {self.recipe.source}: [{name}] must be a table")
        return value


def _ingest(ctx: Context) -> dict:
    from curate.crawl import crawl
    from curate.manifest import SUMMARY, build_manifest

    spec = ctx.table("input")
    ds = Dataset(ctx.dataset)
    with ds.lock("ingest"):  # taking it moves an older layout's summary into place before it is looked for
        if storage.exists(sidecar(ds.manifest_dir, SUMMARY)):
            return {"skipped": "manifest already built"}
    urls, archives = list(spec.get("urls", [])), list(spec.get("crawl", []))
    if not urls and not archives:
        raise CurateError(f"recipe {ctx.recipe.source}: [input] needs `urls = [...]` or `crawl = [...]`")
    out: dict[str, Any] = {}
    if archives and not urls:
        out["crawl"] = crawl(
            archives,
            ds.manifest_dir,
            executor=ctx.executor,
            workers=ctx.workers,
            min_alt_chars=int(spec.get("min_alt_chars", 1)),
            overwrite=True,
        )
        return out
    if archives:
        # Both kinds: crawl pairs keep their full lineage in DATASET/crawl; the manifest merges them with the
        # URL lists (same uids, so `curate sql` joins back to page_url and source).
        crawl_dir = ds.path("crawl")
        out["crawl"] = crawl(
            archives,
            crawl_dir,
            executor=ctx.executor,
            workers=ctx.workers,
            min_alt_chars=int(spec.get("min_alt_chars", 1)),
            overwrite=True,
        )
        urls = [*storage.list_files(crawl_dir, ".parquet"), *urls]
    out["manifest"] = build_manifest(
        urls,
        ds.manifest_dir,
        url_col=spec.get("url_col"),
        caption_col=spec.get("caption_col"),
        keep_cols=tuple(spec.get("keep_cols", ())),
        takedown=ds.takedown_path,
        overwrite=True,
        rows_per_part=int(spec.get("rows_per_part", 10_000)),
    )
    return out


def _download(ctx: Context) -> dict:
    from curate.download import DownloadConfig, download

    config = from_table(DownloadConfig, ctx.table("download"), "download")
    ds = Dataset(ctx.dataset)
    return download(
        ds.manifest_dir, ctx.dataset, config, executor=ctx.executor, workers=ctx.workers
    ).to_dict()


def _annotate(ctx: Context) -> dict:
    from curate.annotate import annotate

    spec = dict(ctx.table("annotate"))
    # Every [annotate] key is an annotate() option with the same name (signals, language_model,
    # clip_model, clip_checkpoint, device, ...): one name per setting in recipes and flags.
    options = set(inspect.signature(annotate).parameters) - {"dataset", "executor", "workers"}
    unknown = sorted(set(spec) - options)
    if unknown:
        raise CurateError(
            f"[annotate] has unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(options))}"
        )
    summary = annotate(ctx.dataset, executor=ctx.executor, workers=ctx.workers, **spec).to_dict()
    if "balance" in ctx.recipe.raw and "concepts" not in (spec.get("signals") or []):  # opt-in, needed here
        summary["concepts"] = annotate(
            ctx.dataset,
            signals="concepts",
            entries=spec.get("entries"),
            executor=ctx.executor,
            workers=ctx.workers,
        ).to_dict()
    return summary


def _dedup(ctx: Context) -> dict:
    from curate.dedup import dedup

    return dedup(
        ctx.dataset,
        max_distance=ctx.recipe.dedup.get("max_distance"),
        against=list(ctx.recipe.dedup.get("against", [])),
    )


def _overlap(ctx: Context) -> dict:
    from curate.dedup.overlap import overlap

    benchmarks = dict(ctx.recipe.overlap.get("benchmarks", {}))
    if not benchmarks:
        return {"skipped": "no [overlap] benchmarks in the recipe"}
    return overlap(ctx.dataset, benchmarks, max_distance=ctx.recipe.overlap.get("max_distance"))


def _filter(ctx: Context) -> dict:
    from curate.filter import filter_dataset

    return filter_dataset(ctx.dataset, ctx.recipe)


def _export(ctx: Context) -> dict:
    from curate.export.stage import export

    spec = ctx.table("export")
    return export(
        ctx.dataset,
        ctx.recipe,
        spec.get("out"),
        fmt=spec.get("format", "parquet"),
        samples_per_shard=int(spec.get("samples_per_shard", 10_000)),
    )


def _train(ctx: Context) -> dict:
    spec = dict(ctx.table("train"))
    if not spec:
        return {"skipped": "no [train] table in the recipe"}
    ds = Dataset(ctx.dataset)
    data = spec.pop("data", None) or ctx.table("export").get("out") or ds.export_dir(ctx.recipe.name)
    out_dir = spec.pop("out_dir", None) or ds.path("runs", ctx.recipe.name)
    return train_from_table(spec, data, out_dir)


def train_from_table(spec: dict[str, Any], data: str, out_dir: str) -> dict:
    """Train with a recipe's [train] settings; a run dir that holds checkpoints is resumed, not refused."""
    from curate.train.train import TrainConfig, train

    ckpts = os.path.join(out_dir, "checkpoints")
    resume = bool(os.path.isdir(ckpts) and os.listdir(ckpts))
    return train(from_table(TrainConfig, spec, "train", data=data, out_dir=out_dir, resume=resume))


RUNNERS: dict[str, Callable[[Context], dict]] = {
    "ingest": _ingest,
    "download": _download,
    "annotate": _annotate,
    "dedup": _dedup,
    "overlap": _overlap,
    "filter": _filter,
    "export": _export,
    "train": _train,
}


def _stop_on_failed_shards(stage: str, result: dict, root: str) -> None:
    """Later stages must not run on a partial stage: name the shards that failed and how to resume."""
    nested = [v for v in result.values() if isinstance(v, dict)]
    failed = next(
        (
            r.get("jobs_failed") or r.get("files_failed")
            for r in [result, *nested]
            if r.get("jobs_failed") or r.get("files_failed")
        ),
        None,
    )
    if failed:
        key, error = next(iter(failed.items()))
        raise CurateError(
            f"stage {stage}: {len(failed)} shard(s) failed after retries "
            f"(first: {key}: {error.splitlines()[0]}). "
            f"Finished shards in {root} are kept; fix the cause and rerun the same command to resume."
        )


def run_pipeline(
    recipe: str | Recipe,
    *,
    dataset: str | None = None,
    executor: str = "local",
    workers: int | None = None,
    stages: list[str] | None = None,
) -> PipelineRun:
    """Run the recipe's stages in order on DATASET (the recipe's [input] dataset unless given)."""
    rcp = load_recipe(recipe)
    root = dataset or rcp.raw.get("input", {}).get("dataset")
    if not root:
        raise CurateError(
            f'recipe {rcp.source}: no dataset folder: set [input] dataset = "PATH" or pass --dataset'
        )
    chosen = list(stages or STAGES)
    unknown = [s for s in chosen if s not in STAGES]
    if unknown:
        raise CurateError(f"unknown stages {unknown}: choose from {', '.join(STAGES)}")
    ctx = Context(rcp, root, executor, workers)
    run = PipelineRun(dataset=root, recipe=rcp.name)
    if "://" not in root:
        os.makedirs(root, exist_ok=True)
    for stage in STAGES:
        if stage not in chosen:
            continue
        log.info("stage %s: starting", stage)
        start = time.perf_counter()
        run.stages[stage] = RUNNERS[stage](ctx)
        run.seconds[stage] = round(time.perf_counter() - start, 2)
        _stop_on_failed_shards(stage, run.stages[stage], root)
        log.info("stage %s: done in %.1f s", stage, run.seconds[stage])
    storage.write_json_atomic(
        {"recipe": rcp.name, "seconds": run.seconds, "stages": run.stages},
        storage.join(root, f"run-{rcp.name}.summary.json"),
    )
    return run
