"""Concept matching and balancing at MetaCLIP scale: 500,000 entries, millions of captions.

    python benchmarks/concepts.py match  [--captions 1000000] [--entries 500000]
    python benchmarks/concepts.py decide [--samples 10000000] [--entries 500000]
    python benchmarks/concepts.py value  [--steps 120] [--seeds 3] [--t 100]

match: curate's Matcher (byte-level normalization, token k-gram lookups, automatons on CJK runs)
beside its anchor, MetaCLIP's reference loop (per caption: spacing with str.replace, then the same
pyahocorasick automaton's iter), on one core; both must find the same entries. Entries are synthetic
words and bigrams from a Zipf vocabulary, captions ~10 Zipf words with punctuation, as web alt text.

decide: `curate filter` with a [balance] table over SAMPLES rows (shards + a concepts signal with Zipf
entry ids, ~6 per caption), beside the same recipe without [balance] (the rules-only anchor).
value: a long-tailed pool of synthetic-web photos (10 classes, head class 50x the rarest), `curate filter`
with and without [balance] (entries: the class names), the same tiny CLIP trained for the same steps on
each, zero-shot top-1 on a balanced held-out set, overall and on the 4 rarest classes, over 3 seeds.
Data goes under benchmarks/_work/.
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

WORK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_work", "concepts")
LETTERS = np.array(list("abcdefghijklmnopqrstuvwxyz"))


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def vocabulary(n: int, rng: np.random.Generator) -> list[str]:
    lengths = rng.integers(3, 10, n * 2)
    words = ["".join(rng.choice(LETTERS, k)) for k in lengths]
    return list(dict.fromkeys(words))[:n]


def cjk_words(n: int, rng: np.random.Generator) -> list[str]:
    return list(
        dict.fromkeys("".join(chr(c) for c in rng.integers(0x4E00, 0x4E00 + 3000, 2)) for _ in range(n))
    )


def entry_list(n_entries: int, vocab: list[str], cjk: list[str], rng: np.random.Generator) -> list[str]:
    """78% unigrams (the vocabulary head), 20% bigrams of vocabulary words, 2% two-character CJK words
    (matched as substrings, MetaCLIP 2's rule for scripts without spaces)."""
    uni = vocab[: int(n_entries * 0.78)]
    pairs = rng.integers(0, len(vocab) // 4, (int(n_entries * 0.2), 2))
    bi = list(dict.fromkeys(f"{vocab[a]} {vocab[b]}" for a, b in pairs))
    return uni + bi + cjk[: n_entries - len(uni) - len(bi)]


def captions(n: int, vocab: list[str], cjk: list[str], rng: np.random.Generator) -> pa.Array:
    """~10 Zipf-distributed words per caption, some capitalised, some with punctuation; 5% end with
    a run of CJK characters."""
    words = np.array(vocab, dtype=object)
    lengths = rng.integers(4, 17, n)
    picks = np.minimum(rng.zipf(1.15, lengths.sum()), len(vocab)) - 1
    marks = rng.choice(["", "", "", ",", ".", "!"], lengths.sum())
    tokens = words[picks] + marks
    out, start = [], 0
    for k in lengths:
        text = " ".join(tokens[start : start + k]).capitalize()
        if rng.random() < 0.05:
            text += " " + "".join(cjk[i] for i in rng.integers(0, len(cjk), 3))
        out.append(text)
        start += k
    return pa.array(out, pa.string())


def metaclip_automaton(entries: list[str]):
    """MetaCLIP's automaton: every entry, spaced as MetaCLIP 2 spaces it."""
    import ahocorasick

    from curate.concepts.matching import pattern

    automaton = ahocorasick.Automaton(ahocorasick.STORE_INTS)
    for index, entry in enumerate(entries):
        automaton.add_word(pattern(entry), index)
    automaton.make_automaton()
    return automaton


def metaclip_loop(automaton, texts: list[str]) -> list[list[int]]:
    """The anchor: MetaCLIP's per-caption spacing and automaton.iter (lower-cased as curate does)."""
    out = []
    for text in texts:
        spaced = f" {text.lower()} "
        for mark in (",", ".", ";", ":", "?", "!", "`"):
            spaced = spaced.replace(mark, f" {mark} ")
        for char in ("\t", "\n", "\r"):
            spaced = spaced.replace(char, " ")
        out.append(sorted({i for _, i in automaton.iter(spaced)}))
    return out


def bench_match(n_captions: int, n_entries: int, anchor_captions: int, batch: int) -> None:
    from curate.concepts.entries import EntryList
    from curate.concepts.matching import Matcher

    rng = np.random.default_rng(0)
    vocab = vocabulary(int(n_entries * 0.8), rng)
    cjk = cjk_words(n_entries // 50 + 1000, rng)
    entries = entry_list(n_entries, vocab, cjk, rng)
    listed = EntryList(tuple(entries), (None,) * len(entries), "synthetic")
    base = rss_mb()
    t = time.perf_counter()
    matcher = Matcher(listed)
    build = time.perf_counter() - t
    print(f"automaton: {len(entries):,} entries built in {build:.2f} s, +{rss_mb() - base:.0f} MB RSS")
    chunk = captions(min(n_captions, 1_000_000), vocab, cjk, rng)  # generated once, reused to reach n
    matched = 0
    t = time.perf_counter()
    cpu = time.process_time()
    done = 0
    while done < n_captions:
        for start in range(0, len(chunk), batch):
            if done >= n_captions:
                break
            part = chunk.slice(start, min(batch, n_captions - done))
            ids = matcher.match(part)
            matched += len(ids.values)
            done += len(part)
    wall, cpu = time.perf_counter() - t, time.process_time() - cpu
    print(
        f"curate: {done:,} captions in {wall:.2f} s wall, {cpu:.2f} s CPU: {done / cpu:,.0f} captions/s "
        f"per core ({matched / done:.1f} entries per caption); peak RSS {peak_mb():.0f} MB"
    )
    sample = chunk.slice(0, anchor_captions)
    texts = sample.to_pylist()
    automaton = metaclip_automaton(entries)
    cpu = time.process_time()
    ref = metaclip_loop(automaton, texts)
    anchor_cpu = time.process_time() - cpu
    cpu = time.process_time()
    ours = matcher.match(sample).to_pylist()
    ours_cpu = time.process_time() - cpu
    assert ours == ref, "curate and the MetaCLIP loop disagree"
    print(
        f"anchor (MetaCLIP loop) on {len(texts):,} captions: {len(texts) / anchor_cpu:,.0f} captions/s "
        "per core; "
        f"curate on the same: {len(texts) / ours_cpu:,.0f} ({anchor_cpu / ours_cpu:.2f}x); same entries found"
    )


def make_pool(root: str, n: int, n_entries: int, per_shard: int = 500_000) -> None:
    """Shards (the columns decisions read; no images) and a concepts signal of Zipf entry ids."""
    from curate.annotate.concepts import CONCEPTS_SCHEMA, SHA_KEY
    from curate.concepts.entries import EntryList
    from curate.schema import SHARD_SCHEMA

    marker = os.path.join(root, "signals", "concepts", "_entries", "entries.parquet")
    if os.path.exists(marker):
        return
    rng = np.random.default_rng(1)
    for d in ("shards", "signals/concepts/_entries"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    langs = rng.choice(["en", "de", "fr", "es", "ja", "zh", "ru", "pt", "it", "pl"], n_entries)
    listed = EntryList(tuple(f"e{i}" for i in range(n_entries)), tuple(langs), "synthetic")
    pq.write_table(listed.table().replace_schema_metadata({SHA_KEY: listed.sha256.encode()}), marker)
    for s in range(0, n, per_shard):
        m = min(per_shard, n - s)
        key = f"{s // per_shard:05d}"
        uid = pa.array(np.frombuffer(rng.bytes(16 * m), dtype="S16").tolist()).cast(pa.binary())
        uid = pa.array([u.hex() for u in uid.to_pylist()], pa.string())
        ok = rng.random(m) < 0.9
        cols = {
            "uid": uid,
            "status": np.where(ok, "success", "failed"),
            "width": np.full(m, 256, np.int32),
            "height": np.full(m, 256, np.int32),
            "error_class": np.where(ok, None, "http_4xx"),
        }
        table = pa.table(
            {
                f.name: pa.array(cols[f.name], f.type) if f.name in cols else pa.nulls(m, f.type)
                for f in SHARD_SCHEMA
            },
            schema=SHARD_SCHEMA,
        )
        pq.write_table(table, f"{root}/shards/{key}.parquet")
        counts = rng.integers(0, 13, m)  # 0..12 entries, mean 6; ~8% of captions name none
        ids = (np.minimum(rng.zipf(1.1, counts.sum()), n_entries) - 1).astype(np.int32)
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
        concept_ids = pa.ListArray.from_arrays(pa.array(offsets), pa.array(ids))
        signal = pa.table({"uid": uid, "concept_ids": concept_ids}, schema=CONCEPTS_SCHEMA)
        pq.write_table(
            signal.replace_schema_metadata({SHA_KEY: listed.sha256.encode()}),
            f"{root}/signals/concepts/{key}.parquet",
        )


def bench_decide(n: int, n_entries: int, threads: int | None) -> None:
    from curate.filter import filter_dataset

    root = os.path.join(WORK, f"pool_{n}")
    t = time.perf_counter()
    make_pool(root, n, n_entries)
    print(f"pool of {n:,} samples ready ({time.perf_counter() - t:.1f} s)")
    rules = {"name": "rules_only", "filter": {}}
    balanced = {"name": "balanced", "filter": {}, "balance": {"max_per_entry": 20_000, "seed": 0}}
    for recipe in (rules, balanced):
        load = os.getloadavg()[0]
        t, cpu = time.perf_counter(), time.process_time()
        summary = filter_dataset(root, recipe, threads=threads)
        print(
            f"{recipe['name']}: {time.perf_counter() - t:.2f} s wall, {time.process_time() - cpu:.2f} s CPU "
            f"(threads {threads or 'all'}; load {load:.1f} before, {os.getloadavg()[0]:.1f} after), "
            f"kept {summary['kept']:,} of {summary['samples']:,}; {summary['dropped_by_reason']}; "
            f"peak RSS {peak_mb():.0f} MB"
        )


TAIL = 4  # the rarest classes: "tail" accuracy is theirs


def class_counts(head: int, ratio: float, n: int) -> list[int]:
    """A geometric long tail over n classes: the first has `head` samples, the last head / ratio."""
    return [round(head * ratio ** (-k / (n - 1))) for k in range(n)]


def make_long_tail(root: str, counts: list[int], seed: int = 0) -> None:
    """Download shards of synthetic-web photos (curate.synthweb's generator) with English alt texts, class k
    drawn counts[k] times; the concepts signal is annotated with the class names as the entry list."""
    from curate.annotate import annotate
    from curate.schema import SHARD_SCHEMA, make_uid
    from curate.synthweb import BACKGROUNDS, CLASSES
    from curate.synthweb.captions import caption_for
    from curate.synthweb.photos import encode, make_photo

    if os.path.exists(os.path.join(root, "signals", "concepts", "_entries")):
        return
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(root, "shards"), exist_ok=True)
    rows = []
    for k, c in enumerate(counts):
        for i in range(c):
            bg = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
            image = encode(
                make_photo(CLASSES[k], seed=seed * 1_000_003 + k * 10_007 + i, size=80, background=bg),
                "jpeg",
                quality=90,
            )
            url = f"https://tail.example/{k}/{i}.jpg"
            caption = caption_for(CLASSES[k], bg, "en", rng)
            rows.append(
                {
                    "uid": make_uid(url, caption),
                    "url": url,
                    "caption": caption,
                    "status": "success",
                    "image": image,
                    "width": 80,
                    "height": 80,
                    "image_format": "jpeg",
                }
            )
    table = pa.Table.from_pylist(rows, schema=SHARD_SCHEMA)
    pq.write_table(table, os.path.join(root, "shards", "00000.parquet"))
    entries = os.path.join(root, "..", "class_entries.txt")
    with open(entries, "w") as fh:
        fh.write("".join(f"{c}\ten\n" for c in CLASSES[: len(counts)]))
    annotate(root, signals="concepts", entries=entries, workers=1)


def make_test_set(folder: str, per_class: int, classes: list[str]) -> None:
    """A balanced held-out set in class folders (other seeds than the pool's)."""
    from curate.synthweb import BACKGROUNDS
    from curate.synthweb.benchmark import label_dir
    from curate.synthweb.photos import encode, make_photo

    if os.path.exists(folder):
        return
    rng = np.random.default_rng(99)
    for k, label in enumerate(classes):
        os.makedirs(os.path.join(folder, label_dir(label)))
        for i in range(per_class):
            bg = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
            with open(os.path.join(folder, label_dir(label), f"{i}.jpg"), "wb") as fh:
                fh.write(
                    encode(
                        make_photo(label, seed=900_000_000 + k * 10_007 + i, size=80, background=bg),
                        "jpeg",
                        quality=90,
                    )
                )


def bench_value(steps: int, batch: int, seeds: int, t: int, head: int, test_per_class: int) -> None:
    """The same tiny CLIP, the same steps, on the unbalanced and the balanced pool: zero-shot accuracy."""
    import json
    import shutil

    from curate.export.stage import export
    from curate.filter import filter_dataset
    from curate.synthweb import CLASSES
    from curate.synthweb.benchmark import label_dir
    from curate.train.evaluate import zero_shot
    from curate.train.train import TrainConfig, train

    work = os.path.join(WORK, "value")
    counts = class_counts(head, 50.0, len(CLASSES))
    root = os.path.join(work, "pool")
    t0 = time.perf_counter()
    make_long_tail(root, counts)
    test = os.path.join(work, f"test{test_per_class}")
    make_test_set(test, test_per_class, list(CLASSES))
    pools = {}
    for name, recipe in (
        ("unbalanced", {"name": "unbalanced"}),
        ("balanced", {"name": "balanced", "balance": {"max_per_entry": t, "seed": 0}}),
    ):
        summary = filter_dataset(root, recipe)
        out = os.path.join(work, f"export_{name}")
        shutil.rmtree(out, ignore_errors=True)
        export(root, recipe, out)
        pools[name] = (out, summary["kept"])
    print(
        f"class counts {counts} (head/tail {counts[0] / counts[-1]:.0f}x); kept: unbalanced "
        f"{pools['unbalanced'][1]}, balanced (t={t}) {pools['balanced'][1]}; "
        f"data {time.perf_counter() - t0:.0f} s"
    )
    tail = set(CLASSES[-TAIL:])
    results: dict[str, list[dict]] = {name: [] for name in pools}
    for seed in range(seeds):
        for name, (data, _) in pools.items():
            run = os.path.join(work, f"run_{name}_{seed}")
            shutil.rmtree(run, ignore_errors=True)
            t1 = time.perf_counter()
            out = train(
                TrainConfig(
                    data=data,
                    out_dir=run,
                    model="tiny",
                    steps=steps,
                    batch_size=batch,
                    seed=seed,
                    warmup_steps=steps // 10,
                    workers=1,
                    threads=1,
                    progress=False,
                    save_every=steps,
                    shuffle_buffer=1000,
                )
            )
            zs = zero_shot(out["checkpoint"], test, classes=[label_dir(c) for c in CLASSES])
            preds = zs["predictions"]
            tail_acc = float(np.mean([p["correct"] for p in preds if p["label"].replace("_", " ") in tail]))
            results[name].append(
                {
                    "seed": seed,
                    "top1": zs["top1"],
                    "tail_top1": tail_acc,
                    "seconds": round(time.perf_counter() - t1, 1),
                }
            )
            print(
                f"{name} seed {seed}: top1 {zs['top1']:.3f}, tail top1 {tail_acc:.3f} "
                f"({time.perf_counter() - t1:.0f} s)",
                flush=True,
            )
    for name, rows in results.items():
        top1 = np.array([r["top1"] for r in rows])
        tail_top1 = np.array([r["tail_top1"] for r in rows])
        print(
            f"{name}: overall {top1.mean():.3f} +- {top1.std(ddof=1):.3f}, tail {tail_top1.mean():.3f} +- "
            f"{tail_top1.std(ddof=1):.3f} over {len(rows)} seeds"
        )
    with open(os.path.join(work, "results.json"), "w") as fh:
        json.dump(
            {"counts": counts, "t": t, "steps": steps, "batch": batch, "results": results}, fh, indent=1
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    m = sub.add_parser("match")
    m.add_argument("--captions", type=int, default=1_000_000)
    m.add_argument("--entries", type=int, default=500_000)
    m.add_argument("--anchor-captions", type=int, default=100_000)
    m.add_argument(
        "--batch", type=int, default=65_536, help="captions per Matcher.match call (a shard is 10,000 rows)"
    )
    d = sub.add_parser("decide")
    d.add_argument("--samples", type=int, default=10_000_000)
    d.add_argument("--entries", type=int, default=500_000)
    d.add_argument("--threads", type=int, default=2)
    v = sub.add_parser("value")
    v.add_argument("--steps", type=int, default=120)
    v.add_argument("--batch", type=int, default=64)
    v.add_argument("--seeds", type=int, default=3)
    v.add_argument("--t", type=int, default=100, help="max_per_entry of the balanced recipe")
    v.add_argument("--head", type=int, default=1000, help="samples of the most frequent class")
    v.add_argument(
        "--test-per-class",
        type=int,
        default=100,
        help="held-out photos per class (the tail's accuracy is over 4 x this many)",
    )
    args = parser.parse_args()
    print(
        f"{platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()}, "
        f"{time.strftime('%Y-%m-%d %H:%M')}"
    )
    if args.what == "match":
        bench_match(args.captions, args.entries, args.anchor_captions, args.batch)
    elif args.what == "decide":
        bench_decide(args.samples, args.entries, args.threads)
    else:
        bench_value(args.steps, args.batch, args.seeds, args.t, args.head, args.test_per_class)


if __name__ == "__main__":
    main()
