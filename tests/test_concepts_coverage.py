"""The coverage card of a balanced recipe in `curate stats` and the HTML report, checked against the data."""

from __future__ import annotations

import subprocess
import sys

import duckdb
import pytest
from concept_pool import write_pool

from curate.annotate import annotate
from curate.filter import filter_dataset
from curate.inspect.report import build_report
from curate.inspect.stats import compute_stats

COUNTS = {"cat": 600, "dog": 300, "bird": 40, "fish": 10}
LANGS = {"cat": "en", "dog": "en", "bird": "de", "fish": "fr"}


@pytest.fixture(scope="module")
def balanced(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("coverage")
    rows, languages = [], []
    for name, count in COUNTS.items():
        for i in range(count):
            host = "big.example" if name == "cat" else f"{name}.example"
            rows.append((f"https://{host}/{i}.jpg", f"my {name} number {i}", True))
            languages.append(LANGS[name])
    rows += [(f"https://none.example/{i}.jpg", f"a plain wall {i}", True) for i in range(20)]
    languages += ["en"] * 20
    root = str(tmp / "ds")
    uids = write_pool(root, rows, per_shard=400, languages=languages)
    entries = tmp / "entries.txt"
    entries.write_text("cat\ten\ndog\ten\nbird\tde\nfish\tfr\nhorse\ten\n")
    annotate(root, signals="concepts", entries=str(entries), workers=1)
    filter_dataset(root, {"name": "bal", "balance": {"max_per_entry": 50, "seed": 0}})
    targets = tmp / "targets.txt"
    targets.write_text("fish\nhorse\ncat\nnumber 7\n")
    return root, uids, str(targets)


def test_card_counts_agree_with_the_decisions(balanced):
    root, uids, targets = balanced
    card = compute_stats(root, targets=targets)["coverage"]["bal"]
    kept = dict(
        duckdb.sql(f"""SELECT s.caption, d.keep FROM '{root}/decisions/bal.parquet' d
                               JOIN '{root}/shards/*.parquet' s USING (uid)""").fetchall()
    )
    kept_by_concept = {n: sum(1 for c, k in kept.items() if k and c.startswith(f"my {n} ")) for n in COUNTS}
    assert card["samples_before"] == sum(COUNTS.values()) and card["samples_after"] == sum(kept.values())
    assert card["entries"] == 5 and card["matched_before"] == 4 and card["matched_after"] == 4
    assert [(r["entry"], r["before"], r["after"]) for r in card["top"]] == [
        (n, COUNTS[n], kept_by_concept[n]) for n in COUNTS
    ] + [("horse", 0, 0)]
    # fewest kept first
    assert [r["entry"] for r in card["starved"]] == sorted(
        COUNTS, key=lambda n: (kept_by_concept[n], COUNTS[n])
    )
    assert card["curve"]["rank"] == [1, 2, 3, 4] and card["curve"]["before"] == sorted(
        COUNTS.values(), reverse=True
    )
    assert {g["group"]: (g["before"], g["after"]) for g in card["entry_languages"]} == {
        "en": (900, kept_by_concept["cat"] + kept_by_concept["dog"]),
        "de": (40, 40),
        "fr": (10, 10),
    }
    assert {g["group"]: g["before"] for g in card["languages"]} == {"en": 900, "de": 40, "fr": 10}
    assert {g["group"]: g["after"] for g in card["domains"]}["big.example"] == kept_by_concept["cat"]
    number7 = sum(1 for c, k in kept.items() if k and c.endswith(" number 7"))  # not "number 70"
    expected = [
        {"concept": "horse", "before": 0, "after": 0},
        {"concept": "number 7", "before": 4, "after": number7},
        {"concept": "fish", "before": 10, "after": 10},
        {"concept": "cat", "before": 600, "after": kept_by_concept["cat"]},
    ]
    assert card["targets"] == sorted(expected, key=lambda t: (t["after"], t["before"], t["concept"]))
    assert card["targets"][0]["concept"] == "horse"  # zeros first


def test_stats_cli_and_report_show_the_card(balanced, tmp_path):
    root, _, targets = balanced
    out = subprocess.run(
        [sys.executable, "-m", "curate", "stats", root, "--targets", targets],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "coverage of recipe bal: 950 -> " in out and "targets: 1 of 4 with no sample (horse)" in out
    assert "starved (fewest kept): fish 10->10, bird 40->40" in out
    html = tmp_path / "report.html"
    build_report(root, str(html), "bal", targets=targets)
    text = html.read_text()
    assert "Concept coverage, recipe bal" in text and "Target concepts (fewest first)" in text
    assert text.count("entry counts by rank") == 1  # the head/tail plot
