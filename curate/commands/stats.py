"""`curate stats DATASET [--recipe NAME] [--json]`: the numbers of a dataset card (docs/FORMAT.md#inspect)."""

from __future__ import annotations

import argparse
import json

NAME = "stats"
HELP = (
    "dataset-card numbers: download success, failures, sizes, captions, languages, NSFW, duplicates, overlap"
)
ORDER = 61


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(NAME, help=HELP, description=HELP)
    parser.add_argument("dataset", metavar="DATASET", help="dataset folder or fsspec URL")
    parser.add_argument(
        "--recipe",
        metavar="NAME",
        help="kept count and drops per reason for this recipe only (default: every recipe with decisions)",
    )
    parser.add_argument("--json", action="store_true", help="print the full statistics as JSON")
    parser.add_argument(
        "--targets",
        metavar="FILE",
        help="concepts to count in each balanced recipe's coverage "
        "card, one per line (e.g. a benchmark's class names); zeros are listed first",
    )
    parser.add_argument("--threads", type=int, default=None, help="DuckDB threads (default: all cores)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from curate.inspect.stats import compute_stats

    stats = compute_stats(args.dataset, args.recipe, threads=args.threads, targets=args.targets)
    print(json.dumps(stats, indent=2) if args.json else render(stats))
    return 0


def _pct(rate: float | None) -> str:
    return "n/a" if rate is None else f"{100 * rate:.1f}%"


def _counts(d: dict) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in d.items()) or "none"


def _quant(d: dict) -> str:
    q = d["quantiles"]
    return f"median {q['p50']:g} (p5 {q['p5']:g}, p95 {q['p95']:g})" if d["count"] else "no values"


def render(s: dict) -> str:
    """Human-readable summary of `compute_stats` output.

    Sections not built yet say which command builds them.
    """
    out = [f"dataset {s['dataset']}"]
    m = s["manifest"]
    out.append(
        f"manifest: {m['rows']:,} rows ({_counts(m['by_status'])})"
        if m
        else "manifest: none (curate manifest)"
    )
    d = s["download"]
    if d:
        out.append(
            f"download: {d['rows']:,} rows, success {_pct(d['success_rate'])} ({_counts(d['by_status'])})"
        )
        out.append(f"  failures by class: {_counts(d['failures_by_class'])}")
        for h in d["top_failing_hosts"]:
            out.append(
                f"  failing host {h['host']}: {h['failed']:,} of {h['rows']:,} rows ({h['main_error']})"
            )
        f = d["stats_files"]
        out.append(f"  shard stats files: {f['shards']} shards, {f['rows']:,} rows")
    else:
        out.append("download: none (curate download)")
    i = s["images"]
    if i:
        out.append(f"images: {i['count']:,}; width {_quant(i['width'])}; height {_quant(i['height'])}")
        out.append(
            f"  shorter side {_quant(i['shorter_side'])}; aspect {_quant(i['aspect'])}; "
            f"formats {_counts(i['formats'])}"
        )
    c = s["captions"]
    if c:
        out.append(f"captions: chars {_quant(c['chars'])}; words {_quant(c['words'])}; empty {c['empty']:,}")
        if "flags" in c:
            out.append(f"  flagged: {_counts(c['flags'])}")
    lang = s["language"]
    out.append(
        "language: "
        + (
            ", ".join(f"{t['language']} {_pct(t['share'])}" for t in lang["top"][:10])
            if lang
            else "not annotated (curate annotate)"
        )
    )
    n = s["nsfw"]
    out.append(
        f"nsfw: image {_quant(n['image'])}, >= 0.5: {n['image']['at_least_0.5']:,}; text >= 0.5: "
        f"{n['text']['at_least_0.5']:,}"
        if n
        else "nsfw: not annotated (curate annotate)"
    )
    dup = s["duplicates"]
    out.append(
        f"duplicates: {dup['duplicates']:,} of {dup['samples']:,} images ({_pct(dup['rate'])}); "
        f"{_counts(dup['by_kind'])}; largest cluster {dup['largest_cluster']}"
        if dup
        else "duplicates: not computed (curate dedup)"
    )
    if s["overlap"]:
        for bench, o in s["overlap"].items():
            pct = "n/a" if o["overlap_pct"] is None else f"{o['overlap_pct']:.2f}%"
            out.append(
                f"overlap {bench}: {o['eval_images_matched']:,} of {o['eval_images'] or 0:,} eval images "
                f"matched ({pct}); {o['training_samples_flagged']:,} training samples flagged"
            )
    else:
        out.append("overlap: not computed (curate overlap)")
    for name, r in s["recipes"].items():
        out.append(f"recipe {name}: kept {r['kept']:,} of {r['samples']:,} ({_pct(r['kept_rate'])})")
        for reason, count in r["drops_by_reason"].items():
            out.append(
                f"  dropped for {reason}: {count:,} ({r['drops_by_reason_alone'][reason]:,} for this alone)"
            )
    if not s["recipes"]:
        out.append("recipes: none applied (curate filter)")
    if s["takedowns"]:
        out.append(
            f"takedowns: {_counts(s['takedowns']['requests'])}; {s['takedowns']['uids_purged']:,} purged"
        )
    from curate.inspect.coverage_report import render_text

    out += render_text(s.get("coverage"))
    out.append(f"({s['seconds']:.2f} s)")
    return "\n".join(out)
