"""`curate why DATASET UID`: everything known about one sample, and each recipe's verdict with reasons."""

from __future__ import annotations

import argparse
import json

NAME = "why"
HELP = "explain one sample: manifest row, download outcome, signals, duplicates, overlap, decisions"
ORDER = 62


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(NAME, help=HELP, description=HELP)
    parser.add_argument("dataset", metavar="DATASET", help="dataset folder or fsspec URL")
    parser.add_argument("uid", metavar="UID", help="the sample's uid (or a unique prefix of 6+ characters)")
    parser.add_argument("--json", action="store_true", help="print everything as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from curate.inspect.why import explain

    info = explain(args.dataset, args.uid)
    print(json.dumps(info, indent=2, default=str) if args.json else render(info))
    return 0


def _fields(row: dict | None, skip: tuple[str, ...] = ("uid",)) -> list[str]:
    return [f"    {k}: {v}" for k, v in (row or {}).items() if k not in skip and v not in (None, [], "")]


def _concepts(info: dict | None) -> list[str]:
    """The matched entries, and per balanced recipe each one's p_e and the keep probability."""
    if info is None:
        return []
    if not info["entries"]:
        return ["  concepts: no entry matched the caption"]
    out = ["  concepts: " + ", ".join(f"{e['entry']} ({e['lang'] or '-'})" for e in info["entries"])]
    for recipe, r in info["recipes"].items():
        parts = ", ".join(f"{e['entry']} p={e['p']:.3g} of {e['matched']:,}" for e in r["entries"])
        out.append(f"    balance in {recipe}: keep probability {r['keep_probability']:.3g} ({parts})")
    return out


def render(info: dict) -> str:
    """Verdicts first (what a user asks `why` for), then the facts behind them."""
    out = [f"uid {info['uid']}"]
    for recipe, d in info["decisions"].items():
        verdict = "KEPT" if d["keep"] else "DROPPED: " + ", ".join(d["reasons"])
        out.append(f"  recipe {recipe}: {verdict}")
    if not info["decisions"]:
        out.append("  no recipe applied yet (curate filter)")
    out += _concepts(info.get("concepts"))
    m = info["manifest"]
    out.append("manifest:" if m else "manifest: not in the manifest")
    out += _fields(m)
    d = info["download"]
    if d:
        detail = ": ".join(str(x) for x in (d["error_class"], d["error_message"]) if x)
        outcome = d["status"] + (f" ({detail})" if d["status"] != "success" else "")
        out.append(f"download: {outcome}, shard {d['shard']}")
        out += _fields(d, skip=("uid", "shard", "status", "error_class", "error_message", "url", "caption"))
    else:
        out.append("download: not downloaded yet (curate download)")
    out.append("signals:" if info["signals"] else "signals: not annotated yet (curate annotate)")
    out += _fields(info["signals"])
    c = info["duplicates"]
    if c:
        role = (
            "representative"
            if c["is_representative"]
            else (
                f"{c['duplicate_kind']} duplicate of {c['representative_uid']} "
                f"(distance {c['distance_to_representative']})"
            )
        )
        out.append(f"duplicates: {role}; cluster {c['cluster_id']} ({c['cluster_size']} sample(s))")
        out += [
            f"    {m['uid']} {m['duplicate_kind'] or 'representative'}"
            for m in c["members"]
            if c["cluster_size"] > 1
        ]
    else:
        out.append("duplicates: not in a cluster (dedup not run, or no usable image)")
    for match in info["overlap"]:
        out.append(
            f"benchmark overlap: {match['benchmark']}/{match['eval_id']} ({match['match_kind']}, "
            f"distance {match['distance']})"
        )
    for t in info["takedowns"]:
        out.append(f"takedown: {t['kind']} {t['value']} ({t['reason']}, {t['requested_at']})")
    return "\n".join(out)
