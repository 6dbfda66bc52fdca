"""Language identification: accuracy per language and captions/s per core, fastText lid.176 vs langdetect.

Accuracy: DATA/langid-sentences (30 languages, 1,000 real sentences each), on full sentences
and on 3-15 word cuts of them (3-15 x 2 characters for zh/ja/th, written without spaces), through
curate.annotate.language.detect, the function the `language` signal calls. langdetect runs on a
sample (--langdetect-per-language) because it is ~300x slower.
Speed: real alt texts from DATA/url-lists/test_10000.parquet (column TEXT), one core. DATA is the real-data
reference folder's data/ (env CURATE_REFERENCE_DATA, as for the tests).
Rates are per CPU-second of this process (time.process_time), steadier than wall time on a shared machine.

    python benchmarks/language.py --langdetect-per-language 100
"""

from __future__ import annotations

import argparse
import os
import random
import time
from pathlib import Path

import pyarrow.parquet as pq

from curate.annotate.language import detect

SHARED = (
    Path(os.environ.get("CURATE_REFERENCE_DATA", Path(__file__).resolve().parents[2] / "shared")) / "data"
)


def cut(sentence: str, rng: random.Random) -> str:
    words = sentence.split()
    n = rng.randint(3, 15)
    if len(words) >= 3:
        start = rng.randint(0, max(0, len(words) - n))
        return " ".join(words[start : start + n])
    start = rng.randint(0, max(0, len(sentence) - 2 * n))
    return sentence[start : start + 2 * n]


def accuracy_by_language(pairs: list[tuple[str, str]], backend: str) -> tuple[dict[str, float], float, float]:
    start = time.process_time()
    codes, _ = detect([s for _, s in pairs], backend)
    seconds = time.process_time() - start
    hits: dict[str, list[int]] = {}
    for (truth, _), code in zip(pairs, codes, strict=False):
        hits.setdefault(truth, []).append(code == truth)
    per = {lang: sum(h) / len(h) for lang, h in hits.items()}
    overall = sum(sum(h) for h in hits.values()) / len(pairs)
    return per, overall, len(pairs) / seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--langdetect-per-language", type=int, default=100)
    args = ap.parse_args()
    folder = SHARED / "langid-sentences"
    if not folder.exists():
        raise SystemExit(f"{folder} is absent: set CURATE_REFERENCE_DATA to the real-data reference folder")
    rng = random.Random(0)
    full = []
    for name in sorted(os.listdir(folder)):
        lines = (folder / name).read_text(encoding="utf-8").splitlines()
        full += [(name.split(".")[0], line.strip()) for line in lines if line.strip()]
    cuts = [(lang, cut(s, rng)) for lang, s in full]
    sample_idx = sorted(rng.sample(range(len(full)), 30 * args.langdetect_per_language))
    print(f"load before: {os.getloadavg()[0]:.2f}")
    results = {}
    for backend, idx in (("fasttext", range(len(full))), ("langdetect", sample_idx)):
        for kind, pairs in (("sentences", full), ("cuts 3-15 words", cuts)):
            results[(backend, kind)] = accuracy_by_language([pairs[i] for i in idx], backend)
            _, overall, rate = results[(backend, kind)]
            print(f"{backend:10s} {kind:16s} n={len(idx):6d} accuracy {overall:.4f} ({rate:,.0f}/s)")
    langs = sorted(results[("fasttext", "sentences")][0])
    print("\n| language | fastText sentences | fastText cuts | langdetect sentences | langdetect cuts |")
    print("| --- | --- | --- | --- | --- |")
    for lang in langs:
        row = [
            results[(b, k)][0].get(lang, float("nan"))
            for b in ("fasttext", "langdetect")
            for k in ("sentences", "cuts 3-15 words")
        ]
        print(f"| {lang} | " + " | ".join(f"{v:.3f}" for v in row) + " |")
    captions_path = SHARED / "url-lists" / "test_10000.parquet"
    if captions_path.exists():
        captions = [c for c in pq.read_table(captions_path, columns=["TEXT"]).column("TEXT").to_pylist()]
        detect(captions[:10], "fasttext")  # load the model outside the timing
        start = time.process_time()
        detect(captions, "fasttext")
        ft = len(captions) / (time.process_time() - start)
        start = time.process_time()
        detect(captions[:500], "langdetect")
        ld = 500 / (time.process_time() - start)
        print(
            f"\nreal alt texts ({len(captions):,}, one core): fasttext {ft:,.0f} captions/s | "
            f"langdetect {ld:,.0f} captions/s | {ft / ld:,.0f}x"
        )
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
