"""[balance]: MetaCLIP's balancing in the decision query, checked against the formula and binomial bounds."""

from __future__ import annotations

import hashlib
import math
import subprocess
import sys

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest
from concept_pool import write_pool

from curate.annotate import annotate
from curate.concepts.balance import Balance
from curate.errors import CurateError
from curate.filter import filter_dataset
from curate.inspect.why import explain
from curate.recipe import load_recipe
from curate.schema import SHARD_SCHEMA


def _annotated(tmp_path, rows, entries: str, per_shard: int = 5000) -> tuple[str, list[str]]:
    root = str(tmp_path / "ds")
    uids = write_pool(root, rows, per_shard=per_shard)
    path = tmp_path / "entries.txt"
    path.write_text(entries, encoding="utf-8")
    annotate(root, signals="concepts", entries=str(path), workers=1)
    return root, uids


def _decisions(root: str, name: str) -> dict[str, tuple[bool, list[str]]]:
    rows = duckdb.sql(f"SELECT uid, keep, reasons FROM '{root}/decisions/{name}.parquet'").fetchall()
    return {u: (k, list(r)) for u, k, r in rows}


def _report(root: str, name: str) -> list[dict]:
    return pq.read_table(f"{root}/decisions/_balance/{name}.parquet").to_pylist()


def _draw(uid: str, seed: int) -> float:
    return int(hashlib.md5(f"{uid}:{seed}".encode()).hexdigest()[:13], 16) / 2.0**52


ZIPF_ENTRIES = 40
HEAD = 3000  # entry k is named by round(HEAD / (k + 1)) captions: a Zipf law with exponent 1


@pytest.fixture(scope="module")
def zipf_pool(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("zipf")
    counts = [round(HEAD / (k + 1)) for k in range(ZIPF_ENTRIES)]
    rows = [
        (f"https://z.example/{k}/{i}.jpg", f"A photo of item{k:02d}, number {i}", True)
        for k, c in enumerate(counts)
        for i in range(c)
    ]
    rows += [(f"https://z.example/failed/{i}.jpg", f"a lost photo of item00 #{i}", False) for i in range(400)]
    rows += [(f"https://z.example/none/{i}.jpg", f"a photo of nothing listed {i}", True) for i in range(50)]
    entries = "".join(f"item{k:02d}\n" for k in range(ZIPF_ENTRIES))
    root, uids = _annotated(tmp_path, rows, entries)
    return root, uids, counts


def _recipe(name: str, **balance) -> dict:
    return {"name": name, "balance": balance}


def test_kept_per_entry_is_min_of_count_and_t_within_binomial_tolerance(zipf_pool):
    root, uids, counts = zipf_pool
    t = 200
    summary = filter_dataset(root, _recipe("bal", max_per_entry=t, seed=3))
    decisions = _decisions(root, "bal")
    assert len(decisions) == len(uids)
    report = _report(root, "bal")
    assert [r["entry"] for r in report] == [f"item{k:02d}" for k in range(ZIPF_ENTRIES)]
    for k, (c, r) in enumerate(zip(counts, report, strict=True)):
        assert r["matched"] == c  # failed downloads (item00) are not in c_e: balancing comes after the rules
        assert r["p"] == pytest.approx(min(1.0, t / c))
        expected, sd = min(c, t), math.sqrt(c * r["p"] * (1 - r["p"]))
        assert abs(r["kept"] - expected) <= 4 * sd, (k, c, r["kept"])
        if c <= t:
            assert r["kept"] == c  # tail entries keep every sample
    kept_total = sum(r["kept"] for r in report)
    assert summary["kept"] == kept_total
    sd_total = math.sqrt(sum(c * min(1, t / c) * (1 - min(1, t / c)) for c in counts))
    assert abs(kept_total - sum(min(c, t) for c in counts)) <= 4 * sd_total
    by_reason = summary["dropped_by_reason"]
    assert by_reason["no_concept"] == 50 and by_reason["download_failed"] == 400
    assert by_reason["balanced_out"] == sum(counts) - kept_total
    # each dropped row names its reason; failed downloads that name an entry are not balanced
    reasons = [tuple(r) for k, r in decisions.values() if not k]
    assert set(reasons) == {("no_concept",), ("balanced_out",), ("download_failed",)}


def test_decisions_are_the_same_on_rerun_and_change_with_the_seed(zipf_pool):
    root, _, _ = zipf_pool
    filter_dataset(root, _recipe("a", max_per_entry=150, seed=1))
    first = _decisions(root, "a")
    filter_dataset(root, _recipe("a", max_per_entry=150, seed=1))
    assert _decisions(root, "a") == first
    filter_dataset(root, _recipe("b", max_per_entry=150, seed=2))
    other = _decisions(root, "b")
    changed = sum(first[u][0] != other[u][0] for u in first)
    assert changed > 500  # another draw, same law
    assert abs(sum(k for k, _ in other.values()) - sum(k for k, _ in first.values())) < 300


def test_decisions_equal_a_direct_implementation_of_the_formula(tmp_path):
    rng = np.random.default_rng(11)
    names = ["cat", "dog", "sun", "tree", "boat"]
    rows = []
    for i in range(300):
        picked = [n for n in names if rng.random() < [0.7, 0.4, 0.2, 0.08, 0.03][names.index(n)]]
        rows.append(
            (f"https://d.example/{i}.jpg", " and ".join(picked) or "nothing at all", bool(rng.random() > 0.1))
        )
    root, uids = _annotated(tmp_path, rows, "\n".join(names) + "\n", per_shard=70)
    t, seed = 12, 5
    filter_dataset(root, _recipe("direct", max_per_entry=t, seed=seed))
    got = _decisions(root, "direct")

    matched = [[names.index(w) for w in caption.split(" and ") if w in names] for _, caption, _ in rows]
    counts = np.zeros(len(names))
    for ids, (_, _, ok) in zip(matched, rows, strict=True):
        if ok:
            counts[ids] += 1
    p = np.minimum(1.0, t / np.maximum(counts, 1))
    for uid, ids, (_, _, ok) in zip(uids, matched, rows, strict=True):
        reasons = [] if ok else ["download_failed"]
        if not ids:
            reasons.append("no_concept")
        elif ok and _draw(uid, seed) >= 1 - np.prod(1 - p[ids]):
            reasons.append("balanced_out")
        assert got[uid] == (not reasons, reasons), (uid, ids)
    assert sum(1 for k, _ in got.values() if k) < sum(1 for _, _, ok in rows if ok) * 0.5  # balancing bit

    info = explain(root, uids[0])["concepts"]
    ids0 = matched[0]
    assert [e["entry"] for e in info["entries"]] == [names[i] for i in sorted(ids0)]
    mine = info["recipes"]["direct"]
    assert {e["entry"]: e["p"] for e in mine["entries"]} == pytest.approx({names[i]: p[i] for i in ids0})
    assert mine["keep_probability"] == pytest.approx(1 - np.prod(1 - p[ids0]), abs=1e-6)
    shown = subprocess.run(
        [sys.executable, "-m", "curate", "why", root, uids[0]], capture_output=True, text=True, check=True
    ).stdout
    assert f"balance in direct: keep probability {mine['keep_probability']:.3g}" in shown
    assert "concepts: " + ", ".join(f"{names[i]} (-)" for i in sorted(ids0)) in shown


def _p_to_t(counts: np.ndarray, p: float) -> int:
    """MetaCLIP's p_to_t, written out: the count at which the ascending cumulative share is nearest p."""
    ordered = np.sort(counts)
    share = np.cumsum(ordered) / ordered.sum()
    return int(ordered[np.abs(share - p).argmin()])


def test_tail_fraction_sets_each_languages_t_and_overrides_win(tmp_path):
    en = [round(2000 / (k + 1)) for k in range(30)]
    de = [round(600 / (k + 1) ** 1.3) + 1 for k in range(30)]
    rows, entries = [], []
    for lang, counts in (("en", en), ("de", de)):
        for k, c in enumerate(counts):
            entries.append(f"{lang}word{k}\t{lang}")
            rows += [(f"https://l.example/{lang}/{k}/{i}.jpg", f"{lang}word{k} {i}", True) for i in range(c)]
    root, _ = _annotated(tmp_path, rows, "\n".join(entries) + "\n")
    filter_dataset(root, _recipe("tail", tail_fraction=0.3))
    report = _report(root, "tail")
    t_of = {lang: {r["t"] for r in report if r["lang"] == lang} for lang in ("en", "de")}
    assert t_of == {"en": {_p_to_t(np.array(en), 0.3)}, "de": {_p_to_t(np.array(de), 0.3)}}
    filter_dataset(root, _recipe("tail_de", tail_fraction=0.3, max_per_language={"de": 7}))
    report = _report(root, "tail_de")
    assert {r["t"] for r in report if r["lang"] == "de"} == {7}
    assert {r["t"] for r in report if r["lang"] == "en"} == {_p_to_t(np.array(en), 0.3)}


def test_balance_settings_errors_name_the_fix(tmp_path):
    with pytest.raises(CurateError, match="exactly one of max_per_entry"):
        Balance.from_table({"seed": 1}, "r.toml")
    with pytest.raises(CurateError, match="exactly one of max_per_entry"):
        Balance.from_table({"max_per_entry": 5, "tail_fraction": 0.1}, "r.toml")
    with pytest.raises(CurateError, match="tail_fraction must be p"):
        Balance.from_table({"tail_fraction": 1.5}, "r.toml")
    with pytest.raises(CurateError, match="max_per_entry must be t"):
        Balance.from_table({"max_per_entry": 0}, "r.toml")
    with pytest.raises(CurateError, match="valid keys: max_per_entry"):
        Balance.from_table({"max_per_entri": 5}, "r.toml")
    with pytest.raises(CurateError, match="max_per_language"):
        Balance.from_table({"max_per_entry": 5, "max_per_language": {"de": "x"}}, "r.toml")
    root = str(tmp_path / "plain")
    write_pool(root, [("https://p.example/1.jpg", "a cat", True)])
    with pytest.raises(CurateError, match="curate annotate --signals concepts"):
        filter_dataset(root, _recipe("x", max_per_entry=5))


def test_shipped_metaclip_recipe_loads():
    recipe = load_recipe("metaclip")
    assert Balance.from_table(recipe.raw["balance"], recipe.source).max_per_entry == 20000


def test_curate_run_annotates_concepts_for_a_balanced_recipe(tmp_path):
    from curate.run import Context, _annotate

    root = str(tmp_path / "ds")
    write_pool(root, [("https://r.example/1.jpg", "a cat", True), ("https://r.example/2.jpg", "a dog", True)])
    entries = tmp_path / "e.txt"
    entries.write_text("cat\n")
    recipe = load_recipe(
        {
            "name": "r",
            "annotate": {"signals": ["caption"], "entries": str(entries)},
            "balance": {"max_per_entry": 1},
        }
    )
    summary = _annotate(Context(recipe, root, "local", 1))
    assert (
        summary["concepts"]["jobs_done"] == 1 and summary["concepts"]["stats"]["concepts"]["no_concept"] == 1
    )
    filter_dataset(root, recipe)
    assert sorted(r for _, r in _decisions(root, "r").values()) == [[], ["no_concept"]]


def test_an_empty_shard_beside_a_full_one_filters_with_balance(tmp_path):
    root, uids = _annotated(tmp_path, [("https://e.example/1.jpg", "a cat", True)], "cat\ndog\n")
    pq.write_table(SHARD_SCHEMA.empty_table(), f"{root}/shards/00001.parquet")
    annotate(root, signals="concepts", entries=str(tmp_path / "entries.txt"), workers=1)
    empty = pq.read_table(f"{root}/signals/concepts/00001.parquet")
    assert (
        empty.num_rows == 0
        and empty.schema.metadata == pq.read_schema(f"{root}/signals/concepts/00000.parquet").metadata
    )
    summary = filter_dataset(root, _recipe("e", max_per_entry=1))
    assert summary["samples"] == summary["kept"] == 1
    assert _decisions(root, "e") == {uids[0]: (True, [])}
    pq.write_table(empty.replace_schema_metadata(None), f"{root}/signals/concepts/00001.parquet")
    assert filter_dataset(root, _recipe("e", max_per_entry=1))["kept"] == 1  # as earlier versions wrote it


def test_concepts_rows_out_of_shard_order_decide_the_same(tmp_path):
    rows = [
        (f"https://o.example/{i}.jpg", ["a cat", "a dog", "a cat and a dog"][i % 3], True) for i in range(90)
    ]
    root, _ = _annotated(tmp_path, rows, "cat\ndog\n", per_shard=40)
    recipe = _recipe("o", max_per_entry=20, seed=2)
    filter_dataset(root, recipe)  # signal files in the shards' row order: joined by position
    first, report = _decisions(root, "o"), _report(root, "o")
    path = f"{root}/signals/concepts/00001.parquet"
    signal = pq.read_table(path)
    pq.write_table(signal.take(list(reversed(range(signal.num_rows)))), path)  # same key and row count
    filter_dataset(root, recipe)
    assert _decisions(root, "o") == first and _report(root, "o") == report
