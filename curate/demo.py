"""`curate demo`: every stage on a synthetic web served on 127.0.0.1, with no data and no network.

synthetic web -> WARC -> crawl -> manifest -> download -> annotate -> dedup -> overlap (synthetic
benchmark with planted copies of training images) -> filter -> export -> train `tiny` -> zero-shot and
overlap-aware eval -> HTML report. The recipe it runs is written to OUT/recipe.toml, so
`curate run OUT/recipe.toml` repeats (and resumes) it.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import time
from pathlib import Path
from typing import Any

from curate import publish, storage
from curate.recipe import load_recipe

log = logging.getLogger(__name__)

BENCHMARK = "synthbench"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def to_toml(recipe: dict[str, Any]) -> str:
    """A recipe dict (scalars at the top, then tables of scalars, lists and inline tables) as TOML."""
    top = [f"{k} = {_toml_value(v)}" for k, v in recipe.items() if not isinstance(v, dict)]
    tables = [
        f"\n[{name}]\n" + "".join(f"{k} = {_toml_value(v)}\n" for k, v in body.items())
        for name, body in recipe.items()
        if isinstance(body, dict)
    ]
    return "\n".join(top) + "\n" + "".join(tables)


def demo_recipe(
    out: Path,
    warc: Path,
    faults: Path,
    benchmark: Path,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    web_address: str,
) -> dict:
    """The packaged demo recipe, completed with this run's inputs, benchmark, export and training."""
    recipe = {k: v for k, v in load_recipe("demo").raw.items()}
    recipe["input"] = {"dataset": str(out / "dataset"), "crawl": [str(warc)], "urls": [str(faults)]}
    # The synthetic web lives on a loopback address: allow that one address, nothing else (its redirect to
    # the cloud-metadata address, a fault it serves on purpose, stays refused).
    recipe["download"] = {
        "allow_networks": [str(ipaddress.ip_network(web_address))],
        "image_size": 256,
        "connect_timeout": 2.0,
        "read_timeout": 3.0,
        "total_timeout": 6.0,
        "max_backoff": 3.0,
    }
    recipe["overlap"] = {**recipe.get("overlap", {}), "benchmarks": {BENCHMARK: str(benchmark)}}
    recipe["export"] = {"format": "webdataset", "samples_per_shard": 256}
    recipe["train"] = {
        "model": "tiny",
        "steps": steps,
        "batch_size": batch_size,
        "warmup_steps": max(1, steps // 10),
        "lr": lr,
        "save_every": steps,
        "log_every": max(1, steps // 10),
        "workers": 1,
        # one intra-op thread beside one loader worker: two OpenMP threads on 2 cores ran 4x slower
        "threads": 1,
        "out_dir": str(out / "run"),
    }
    return recipe


def run_demo(
    out: str = "curate-demo",
    *,
    n_images: int = 600,
    steps: int = 160,
    batch_size: int = 64,
    lr: float = 1e-3,
    executor: str = "local",
    workers: int | None = None,
    train: bool = True,
    compare_raw: bool = False,
    compare: dict | None = None,
) -> dict:
    """Run the demo into OUT; return the headline numbers and where each output is.

    compare_raw: the DataComp experiment in miniature. Train the same model for the same steps on the raw
    pool (every downloaded sample) and report its zero-shot accuracy beside the curated pool's.
    compare: curate.demo_compare on a web with the real web's caption noise and near-duplicate bursts:
    caption_noise, bursts, seeds, trusted, top_fraction, eps, benchmark_images (see `curate demo --compare`).
    """
    from curate.run import STAGES, run_pipeline
    from curate.synthweb import SyntheticWeb

    root = Path(out).resolve()
    publish.check_replaceable(str(root), "demo")  # a rerun resumes in its own folder; nothing else is touched
    root.mkdir(parents=True, exist_ok=True)
    publish.mark(str(root), "demo")
    timings: dict[str, float] = {}
    start = time.perf_counter()
    noise = {k: compare[k] for k in ("caption_noise", "bursts")} if compare else {}
    with SyntheticWeb(
        n_images=n_images, seed=0, faults=True, slow_seconds=1.0, stall_seconds=10.0, **noise
    ) as web:
        web_dir = root / "web"
        web_dir.mkdir(exist_ok=True)
        warc = web.write_warc(web_dir / "pages.warc.gz")
        fault_urls = set(web.fault_urls.values())
        faults = web_dir / "fault-urls.jsonl"
        faults.write_text(
            "".join(json.dumps(r) + "\n" for r in web.manifest_rows() if r["url"] in fault_urls)
        )
        planted_from = [img for img in web.images if img.copy_of is None][:12]
        bench = web.write_benchmark(
            root / "benchmark",
            n=compare["benchmark_images"] if compare else 120,
            seed=1,
            include_copies_from=planted_from,
        )
        timings["synthetic web"] = round(time.perf_counter() - start, 2)
        recipe = demo_recipe(
            root,
            warc,
            faults,
            bench.root,
            steps=steps,
            batch_size=batch_size,
            lr=lr,
            web_address=web.host,
        )
        recipe_path = root / "recipe.toml"
        recipe_path.write_text(to_toml(recipe), encoding="utf-8")
        stages = [s for s in STAGES if train and not compare or s != "train"]
        result = run_pipeline(str(recipe_path), executor=executor, workers=workers, stages=stages)
        images = web.images
    timings.update(result.seconds)
    dataset = recipe["input"]["dataset"]
    headline = _headline(result.stages, bench)
    if train and not compare:
        headline["eval"] = _evaluate(result.stages["train"], bench.root, dataset)
    if compare:
        from curate.demo_compare import compare_pools

        t0 = time.perf_counter()
        headline["compare"] = compare_pools(
            recipe,
            dataset,
            bench.root,
            images,
            seeds=tuple(compare["seeds"]),
            trusted=compare["trusted"],
            top_fraction=compare["top_fraction"],
            eps=compare["eps"],
        )
        timings["compare"] = round(time.perf_counter() - t0, 2)
    if train and compare_raw:
        t0 = time.perf_counter()
        headline["eval_raw_pool"] = _train_raw_pool(recipe, dataset, bench.root)
        timings["raw pool train+eval"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    from curate.inspect.report import build_report

    report = build_report(dataset, str(root / "report.html"), recipe="demo")
    timings["report"] = round(time.perf_counter() - t0, 2)
    summary = {
        "outputs": {
            "dataset": dataset,
            "recipe": str(recipe_path),
            "warc": str(warc),
            "benchmark": str(bench.root),
            "report": report["output"],
            "run": recipe["train"]["out_dir"] if train else None,
        },
        "headline": headline,
        "seconds": timings,
        "total_seconds": round(time.perf_counter() - start, 1),
    }
    storage.write_json_atomic(summary, str(root / "demo-summary.json"))
    return summary


def _headline(stages: dict[str, dict], bench) -> dict:
    down = stages["download"].get("stats", {})
    decided = stages["filter"]
    return {
        "pairs_crawled": stages["ingest"].get("crawl", {}).get("pairs_written"),
        "manifest_rows": stages["ingest"].get("manifest", {}).get("rows_written"),
        "downloaded": down.get("status", {}).get("success"),
        "download_failed": down.get("status", {}).get("failed"),
        "failures_by_class": down.get("error_class"),
        "kept": decided.get("kept"),
        "dropped": decided.get("dropped"),
        "drops_by_reason": {k: v for k, v in decided.get("dropped_by_reason", {}).items() if v},
        "benchmark_overlap": stages["overlap"].get(BENCHMARK),
        "planted_benchmark_copies": len(bench.planted_keys),
        "exported": stages["export"].get("samples"),
    }


def _train_raw_pool(recipe: dict, dataset: str, benchmark: Path) -> dict:
    """Same model, steps and batch as the curated run, on every downloaded sample (no filter but failures)."""
    from curate.export.stage import export
    from curate.filter import filter_dataset
    from curate.run import train_from_table

    raw = {"name": "raw", "description": "the raw pool: every downloaded sample", "filter": {}}
    decided = filter_dataset(dataset, raw)
    exported = export(dataset, raw, fmt="webdataset", samples_per_shard=256)
    spec = {k: v for k, v in recipe["train"].items() if k != "out_dir"}
    trained = train_from_table(
        spec, exported["out"], str(Path(recipe["train"]["out_dir"]).with_name("run-raw-pool"))
    )
    return {"samples": decided["kept"], **_evaluate(trained, benchmark, dataset)}


def _evaluate(trained: dict, benchmark: Path, dataset: str) -> dict:
    from curate.train.evaluate import load_checkpoint, overlap_aware, zero_shot

    loaded = load_checkpoint(trained["checkpoint"])
    result = zero_shot(loaded, str(benchmark))
    flags = storage.join(dataset, "signals", "overlap", f"{BENCHMARK}.eval.parquet")
    return {
        "zero_shot_top1": result["top1"],
        "chance_top1": result["chance_top1"],
        "n": result["n"],
        "overlap_aware": overlap_aware(result, flags),
        "final_loss": trained.get("loss"),
    }
