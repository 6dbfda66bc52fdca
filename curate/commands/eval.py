"""`curate eval CHECKPOINT --zero-shot DIR_OR_PARQUET [--overlap FLAGS] [--retrieval PARQUET]`."""

from __future__ import annotations

import argparse

NAME = "eval"
HELP = (
    "zero-shot accuracy (All/Clean/Overlap with overlap flags) and retrieval recall of a trained checkpoint"
)
ORDER = 71


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(NAME, help=HELP, description=HELP)
    parser.add_argument(
        "checkpoint", metavar="CHECKPOINT", help="a checkpoint .pt file or a run directory (latest)"
    )
    parser.add_argument(
        "--zero-shot",
        metavar="DIR_OR_PARQUET",
        help="labelled images: a folder with one sub-folder per class, or a Parquet with a label column",
    )
    parser.add_argument(
        "--templates", metavar="FILE", help="prompt templates, one per line with {} for the class"
    )
    parser.add_argument(
        "--overlap",
        metavar="FLAGS_PARQUET",
        help="`curate overlap` flags for that benchmark: DATASET/signals/overlap/NAME.eval.parquet",
    )
    parser.add_argument(
        "--retrieval", metavar="PARQUET", help="captioned images for image<->text recall@1/5/10"
    )
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON here")
    parser.add_argument("--device", default="cpu")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from curate.errors import CurateError
    from curate.extras import require

    require("torch", "train")
    from curate.train.evaluate import TEMPLATES, load_checkpoint, overlap_aware, retrieval, zero_shot

    if not (args.zero_shot or args.retrieval):
        raise CurateError("say what to evaluate: --zero-shot DIR_OR_PARQUET and/or --retrieval PARQUET")
    if args.overlap and not args.zero_shot:
        raise CurateError("--overlap splits zero-shot accuracy: add --zero-shot with the same benchmark")
    loaded = load_checkpoint(args.checkpoint, args.device)
    results: dict = {"checkpoint": loaded[2]["path"], "step": loaded[2]["step"]}
    if args.zero_shot:
        templates = TEMPLATES
        if args.templates:
            templates = tuple(t for t in Path(args.templates).read_text().splitlines() if "{}" in t)
            if not templates:
                raise CurateError(f"{args.templates} has no line with {{}} where the class name goes")
        zs = zero_shot(loaded, args.zero_shot, templates, device=args.device)
        print(
            f"zero-shot  {args.zero_shot}: top-1 {zs['top1']:.2%}  top-5 {zs.get('top5', zs['top1']):.2%}  "
            f"({zs['n']} images, {zs['classes']} classes, chance {zs['chance_top1']:.2%})"
        )
        if args.overlap:
            ov = overlap_aware(zs, args.overlap)
            results["overlap"] = ov

            def fmt(v):
                return "n/a" if v is None else f"{v:.2%}"

            print(
                f"overlap-aware: All {fmt(ov['all'])} ({ov['n_all']})  "
                f"Clean {fmt(ov['clean'])} ({ov['n_clean']})  "
                f"Overlap {fmt(ov['overlap'])} ({ov['n_overlap']})  All-Clean {fmt(ov['all_minus_clean'])}"
            )
        zs.pop("predictions")  # per-image rows: too long for the summary
        results["zero_shot"] = zs
    if args.retrieval:
        rt = retrieval(loaded, args.retrieval, device=args.device)
        results["retrieval"] = rt
        print(
            f"retrieval  {args.retrieval} ({rt['n']} pairs): "
            + "  ".join(
                f"{d} R@{k} {rt[f'{d}_R@{k}']:.2%}"
                for d in ("image_to_text", "text_to_image")
                for k in (1, 5, 10)
            )
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0
