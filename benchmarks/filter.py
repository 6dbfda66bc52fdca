"""`curate filter` on 1M samples (100 shards + 5 signals + dedup clusters) beside a pyarrow anchor.

The anchor applies the same rules with pyarrow alone (read the same columns, hash-join on uid,
compute kernels, a keep mask); the script checks that both keep the same number of samples.

    python benchmarks/filter.py                 # 1M samples, recipes datacomp_basic and strict
    python benchmarks/filter.py --samples 200000
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from curate.schema import SHARD_SCHEMA


def make_dataset(root: str, n: int, per_shard: int = 10_000, seed: int = 0) -> None:
    """Shards (image column null: decisions never read it) and signals with realistic value mixes."""
    if os.path.exists(os.path.join(root, "signals", "dedup", "clusters.parquet")):
        return
    rng = np.random.default_rng(seed)
    for d in (
        "shards",
        "signals/image",
        "signals/language",
        "signals/nsfw",
        "signals/caption",
        "signals/dedup",
    ):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    all_uids = []
    for s in range(0, n, per_shard):
        m = min(per_shard, n - s)
        key = f"{s // per_shard:05d}"
        uid = np.array([f"{i:032x}" for i in rng.integers(0, 2**62, m)], dtype=object)
        all_uids.append(uid)
        ok = rng.random(m) < 0.8
        w = rng.integers(64, 1200, m).astype(np.int32)
        h = rng.integers(64, 1200, m).astype(np.int32)
        words = rng.integers(0, 20, m).astype(np.int32)
        captions = [" ".join(["photo"] * k) for k in words]  # the caption rules read the caption itself
        cols = {
            "uid": uid,
            "url": [f"https://site{i % 500}.example/{i}.jpg" for i in range(s, s + m)],
            "caption": captions,
            "status": np.where(ok, "success", "failed"),
            "error_class": np.where(ok, None, np.where(rng.random(m) < 0.1, "robots_disallowed", "http_4xx")),
            "width": np.where(ok, 256, 0),
            "height": np.where(ok, 256, 0),  # stored: border-resized
            "original_width": np.where(ok, w, 0),
            "original_height": np.where(ok, h, 0),
        }
        table = pa.table(
            {
                f.name: pa.array(cols[f.name], f.type) if f.name in cols else pa.nulls(m, f.type)
                for f in SHARD_SCHEMA
            },
            schema=SHARD_SCHEMA,
        )
        pq.write_table(table, f"{root}/shards/{key}.parquet")
        stored = np.full(m, 256, np.int32)
        pq.write_table(
            pa.table(
                {
                    "uid": uid,
                    "width": stored,
                    "height": stored,
                    "original_width": w,
                    "original_height": h,
                    "aspect": (np.maximum(w, h) / np.minimum(w, h)).astype(np.float32),
                    "is_blank": rng.random(m) < 0.01,
                }
            ),
            f"{root}/signals/image/{key}.parquet",
        )
        langs = rng.choice(["en", "de", "fr", "ja", None], m, p=[0.6, 0.1, 0.1, 0.1, 0.1])
        pq.write_table(
            pa.table(
                {
                    "uid": uid,
                    "language": langs,
                    "language_score": rng.random(m).astype(np.float32),
                    "language_backend": ["fasttext"] * m,
                }
            ),
            f"{root}/signals/language/{key}.parquet",
        )
        pq.write_table(
            pa.table(
                {
                    "uid": uid,
                    "nsfw_image": rng.beta(0.5, 5, m).astype(np.float32),
                    "nsfw_text": rng.beta(0.3, 8, m).astype(np.float32),
                }
            ),
            f"{root}/signals/nsfw/{key}.parquet",
        )
        chars = np.maximum(words * 6 - 1, 0)
        pq.write_table(
            pa.table(
                {
                    "uid": uid,
                    "caption_chars": chars,
                    "caption_words": words,
                    "caption_is_filename": rng.random(m) < 0.02,
                    "caption_is_url": rng.random(m) < 0.01,
                    "caption_has_html": rng.random(m) < 0.01,
                    "caption_is_boilerplate": rng.random(m) < 0.02,
                }
            ),
            f"{root}/signals/caption/{key}.parquet",
        )
    uids = np.concatenate(all_uids)
    rep = np.where(rng.random(n) < 0.1, uids[rng.integers(0, n, n)], uids)
    kind = np.where(rep == uids, None, np.where(rng.random(n) < 0.5, "exact", "near"))
    pq.write_table(
        pa.table(
            {
                "uid": uids,
                "cluster_id": np.zeros(n, np.int64),
                "representative_uid": rep,
                "is_representative": rep == uids,
                "duplicate_kind": kind,
                "distance_to_representative": rng.integers(0, 11, n).astype(np.int16),
            }
        ),
        f"{root}/signals/dedup/clusters.parquet",
    )


def arrow_anchor(root: str, f: dict) -> int:
    """The same rules with pyarrow alone: read columns, hash-join on uid, compute kernels; returns kept."""
    import glob

    import pyarrow.compute as pc

    def read(name, cols):
        return pa.concat_tables(
            pq.read_table(p, columns=cols) for p in sorted(glob.glob(f"{root}/{name}/*.parquet"))
        )

    t = read("shards", ["uid", "status", "error_class", "caption"])
    for name, cols in (
        ("signals/image", ["uid", "original_width", "original_height", "is_blank"]),
        ("signals/language", ["uid", "language", "language_score"]),
        ("signals/nsfw", ["uid", "nsfw_image", "nsfw_text"]),
        (
            "signals/caption",
            [
                "uid",
                "caption_words",
                "caption_chars",
                "caption_is_boilerplate",
                "caption_is_filename",
                "caption_is_url",
                "caption_has_html",
            ],
        ),
        ("signals/dedup", ["uid", "is_representative", "duplicate_kind"]),
    ):
        t = t.join(read(name, cols), "uid", join_type="left outer")
    c = t.column

    def fires(x):  # a rule that evaluates to NULL does not fire, as in SQL
        return pc.fill_null(x, False)

    drop = pc.not_equal(c("status"), "success")
    short = pc.min_element_wise(c("original_width"), c("original_height"))
    drop = pc.or_(drop, fires(pc.less(short, f["min_side"])))
    long_ = pc.max_element_wise(c("original_width"), c("original_height")).cast(pa.float64())
    drop = pc.or_(
        drop,
        fires(pc.greater(pc.divide(long_, pc.if_else(pc.equal(short, 0), None, short)), f["max_aspect"])),
    )
    caption = pc.fill_null(c("caption"), "")  # ASCII captions: Arrow's whitespace split counts as Python's
    words = pc.list_value_length(pc.utf8_split_whitespace(caption))
    drop = pc.or_(drop, pc.less(words, f["min_caption_words"]))
    drop = pc.or_(drop, pc.less(pc.utf8_length(caption), f["min_caption_chars"]))
    drop = pc.or_(drop, pc.invert(pc.is_in(pc.fill_null(c("language"), ""), pa.array(f["languages"]))))
    if "max_nsfw_image" in f:
        drop = pc.or_(drop, fires(c("is_blank")))
        for col in ("caption_is_boilerplate", "caption_is_filename", "caption_is_url", "caption_has_html"):
            drop = pc.or_(drop, fires(c(col)))
        drop = pc.or_(drop, fires(pc.greater(c("nsfw_image"), f["max_nsfw_image"])))
        drop = pc.or_(drop, fires(pc.greater(c("nsfw_text"), f["max_nsfw_text"])))
        drop = pc.or_(drop, pc.less(pc.fill_null(c("language_score"), 0), f["min_language_score"]))
        dup = pc.and_(pc.invert(pc.fill_null(c("is_representative"), True)), pc.is_valid(c("duplicate_kind")))
        drop = pc.or_(drop, dup)
    return t.num_rows - int(pc.sum(drop).as_py())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=1_000_000)
    args = ap.parse_args()
    from curate.filter import filter_dataset
    from curate.recipe import load_recipe

    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_work", f"filter_{args.samples}")
    t = time.perf_counter()
    make_dataset(root, args.samples)
    print(
        f"# {platform.machine()} {os.cpu_count()} cores, python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load {os.getloadavg()[0]:.2f}; "
        f"data ready in {time.perf_counter() - t:.1f} s"
    )
    laion = load_recipe("strict")
    recipes = {
        "datacomp_basic": load_recipe("datacomp_basic"),
        "strict": {
            **laion.raw,
            "filter": {k: v for k, v in laion.filter.items() if k != "drop_benchmark_overlap"},
        },
    }
    for name, recipe in recipes.items():
        runs = []
        for _ in range(3):
            t = time.perf_counter()
            s = filter_dataset(root, recipe)
            runs.append(time.perf_counter() - t)
        t = time.perf_counter()
        kept = arrow_anchor(root, load_recipe(recipe).filter)
        t_anchor = time.perf_counter() - t
        assert kept == s["kept"], (kept, s["kept"])
        print(
            f"{name}: curate filter {args.samples:,} samples: best {min(runs):.2f} s, median "
            f"{sorted(runs)[1]:.2f} s (kept {s['kept']:,}, reasons listed, file written); pyarrow anchor "
            f"(keep mask only, no reasons, no file) {t_anchor:.2f} s; same kept count"
        )
    print(
        f"# peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB, "
        f"load after {os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()
