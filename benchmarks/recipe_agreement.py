"""Agreement of the shipped recipes with their sources on a downloaded dataset (e.g. `curate demo`'s).

    python benchmarks/recipe_agreement.py DATASET

datacomp_basic is compared with tests/test_recipes_parity.py's re-implementation of DataComp's
`load_uids_with_basic_filter_helper` (same lid.176.ftz model). laion5b is compared with the Crawling@Home
rules (URL substrings, urlparse host length, ftfy-cleaned alt text, body size and Pillow format read from
the shard's `bytes` / `original_format`); without a `clip` signal in DATASET the CLIP rule is left out
of both sides; a missing `alt_text` signal is computed first (`curate annotate --signals alt_text`).
Prints samples, kept by each side, and disagreements with examples.
"""

from __future__ import annotations

import os
import sys
from urllib.parse import urlparse

import pyarrow.parquet as pq

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

from test_recipes_parity import datacomp_basic_reference, laion_alt_text  # noqa: E402

from curate.annotate import annotate  # noqa: E402
from curate.annotate.language import _fasttext_model  # noqa: E402
from curate.dataset import Dataset  # noqa: E402
from curate.filter import filter_dataset  # noqa: E402
from curate.recipe import load_recipe  # noqa: E402

COLUMNS = ["uid", "url", "caption", "status", "original_width", "original_height", "bytes", "original_format"]


def laion_reference(rows: list[dict]) -> set[str]:
    out = set()
    for r in rows:
        url = r["url"] or ""
        if r["status"] != "success" or any(x in url for x in (".svg", ".gif", "data:image", "javascript:")):
            continue
        if len(urlparse(url).hostname or "") > 60 or len(laion_alt_text(r["caption"] or "")) < 5:
            continue
        if r["bytes"] < 5000 or (r["original_format"] or "").upper() not in ("JPEG", "JPG", "PNG", "WEBP"):
            continue
        out.add(r["uid"])
    return out


def curate_kept(dataset: str, recipe: dict) -> set[str]:
    filter_dataset(dataset, recipe)
    table = pq.read_table(os.path.join(dataset, "decisions", f"{recipe['name']}.parquet"))
    return {
        u for u, k in zip(table.column("uid").to_pylist(), table.column("keep").to_pylist(), strict=True) if k
    }


def report(name: str, rows: list[dict], ours: set[str], theirs: set[str]) -> None:
    differ = [r for r in rows if (r["uid"] in ours) != (r["uid"] in theirs)]
    share = 100 * (len(rows) - len(differ)) / len(rows)
    print(
        f"{name}: {len(rows)} samples, curate keeps {len(ours)}, reference keeps {len(theirs)}, "
        f"{len(differ)} disagree ({share:.2f}% agreement)"
    )
    for r in differ[:8]:
        print(f"  curate {'keeps' if r['uid'] in ours else 'drops'}: {r['caption']!r} {r['url']}")


def main(dataset: str) -> None:
    rows = []
    for path in Dataset(dataset).shard_paths():
        rows += pq.read_table(path, columns=COLUMNS).to_pylist()
    basic = load_recipe("datacomp_basic").raw
    model = _fasttext_model(None)
    report("datacomp_basic", rows, curate_kept(dataset, basic), datacomp_basic_reference(rows, model))
    if not os.path.isdir(os.path.join(dataset, "signals", "alt_text")):
        annotate(dataset, signals=["alt_text"])
    laion = load_recipe("laion5b").raw
    if not os.path.isdir(os.path.join(dataset, "signals", "clip")):
        laion = {
            **laion,
            "name": "laion5b_no_clip",
            "filter": {k: v for k, v in laion["filter"].items() if k != "min_clip_score"},
        }
    report(laion["name"], rows, curate_kept(dataset, laion), laion_reference(rows))


if __name__ == "__main__":
    main(sys.argv[1])
