"""A takedown reaches every copy curate derived from the sample: signals, decisions, reports, search."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from curation_data import Sample, encode, make_photo, write_dataset

from curate.errors import CurateError
from curate.export.stage import export
from curate.filter import filter_dataset
from curate.inspect.report import build_report
from curate.schema import SHARD_SCHEMA
from curate.takedown.stage import takedown

SECRET = "a photo its owner asked us to remove"


@pytest.fixture()
def dataset(tmp_path) -> tuple[str, list[Sample]]:
    samples = [
        Sample(
            f"https://site.example/{i}.jpg",
            f"a photo of a mountain lake number {i}",
            encode(make_photo(200 + i)),
        )
        for i in range(7)
    ]
    samples.append(Sample("https://owner.example/mine.jpg", SECRET, encode(make_photo(250))))
    root = str(tmp_path / "ds")
    write_dataset(root, samples, per_shard=4)
    filter_dataset(root, "datacomp_basic")
    return root, samples


def _thumbnail_shown(page: Path, caption: str) -> bool:
    """Whether the report shows an image of the sample (its <img> has the caption as alt text)."""
    text = page.read_text()
    return 'src="data:image/jpeg;base64,' in text and f'alt="{caption}"' in text


def test_takedown_purges_signals_decisions_and_rewrites_reports(dataset, tmp_path):
    root, samples = dataset
    gone = samples[-1].uid
    page = tmp_path / "card.html"
    build_report(root, str(page), "datacomp_basic")
    assert _thumbnail_shown(page, SECRET)
    key = "00001"  # the second shard holds samples 4..7
    before = {
        name: pq.read_table(f"{root}/signals/{name}/{key}.parquet").to_pylist()
        for name in ("hashes", "caption", "language", "image", "nsfw")
    }

    summary = takedown(root, domains=["owner.example"])

    assert summary["signal_rows_nulled"] == 5 and summary["decisions_dropped"] == 1
    assert summary["reports_rewritten"] == 1
    # signals: the row stays, its content is gone; the hashes stay to recognise a re-upload
    hashes = {r["uid"]: r for r in pq.read_table(f"{root}/signals/hashes/{key}.parquet").to_pylist()}
    old = {r["uid"]: r for r in before["hashes"]}
    assert hashes[gone]["thumb"] is None and old[gone]["thumb"] is not None
    assert hashes[gone]["phash"] == old[gone]["phash"] and hashes[gone]["sha256"] == old[gone]["sha256"]
    for name in ("caption", "language", "image", "nsfw"):
        rows = {r["uid"]: r for r in pq.read_table(f"{root}/signals/{name}/{key}.parquet").to_pylist()}
        assert set(rows[gone].values()) == {gone, None}
        assert all(rows[r["uid"]] == r for r in before[name] if r["uid"] != gone)
    # decisions made before the request no longer keep it; the file keeps its schema
    path = f"{root}/decisions/datacomp_basic.parquet"
    decided = {u: (k, r) for u, k, r in duckdb.sql(f"SELECT uid, keep, reasons FROM '{path}'").fetchall()}
    assert decided[gone] == (False, ["takedown"])
    assert sum(k for k, _ in decided.values()) == 7
    assert pq.read_schema(path).metadata[b"curate.label_only"] == b"false"
    # the report written before was written again, without the image
    assert not _thumbnail_shown(page, SECRET) and "takedown" in page.read_text()
    assert json.loads(Path(root, "outputs.json").read_text())[0]["path"] == str(page)


def test_takedown_keeps_the_shard_schema(dataset):
    root, samples = dataset
    takedown(root, uids=[samples[-1].uid])
    for shard in sorted(Path(root, "shards").glob("*.parquet")):
        assert pq.read_schema(shard).remove_metadata().equals(SHARD_SCHEMA), shard


def test_a_report_that_cannot_be_rebuilt_is_deleted(dataset, tmp_path):
    root, samples = dataset
    page = tmp_path / "card.html"
    build_report(root, str(page), "datacomp_basic")
    Path(root, "decisions", "datacomp_basic.parquet").unlink()  # its recipe's decisions are gone
    summary = takedown(root, uids=[samples[-1].uid])
    assert summary["pages_deleted"] == 1 and not page.exists()


@pytest.mark.slow
def test_search_no_longer_finds_a_taken_down_sample(dataset, tmp_path):
    pytest.importorskip("torch")
    from curate.train.search import search, write_html
    from curate.train.train import TrainConfig, train

    root, samples = dataset
    gone = samples[-1].uid
    export(root, "datacomp_basic")
    run = tmp_path / "run"
    train(
        TrainConfig(
            data=f"{root}/export/datacomp_basic",
            out_dir=str(run),
            model="tiny",
            image_size=32,
            vocab_size=300,
            batch_size=4,
            steps=1,
            workers=0,
            progress=False,
        )
    )
    exported = f"{root}/export/datacomp_basic"
    searches = {root: tmp_path / "in-dataset.html", exported: tmp_path / "in-export.html"}
    for folder, html in searches.items():
        found = search(str(run), folder, query=SECRET, k=20)
        assert gone in [h["uid"] for h in found["hits"]] and Path(found["cache"]).exists()
        write_html(found, folder, str(html), title=SECRET)
        write_html(found, folder, str(html), title=SECRET)  # its own earlier page: replaced
    notes = tmp_path / "notes.html"
    notes.write_text("mine")
    with pytest.raises(CurateError, match="not a curate search page"):
        write_html(found, root, str(notes), title=SECRET)
    assert notes.read_text() == "mine"

    summary = takedown(root, uids=[gone])

    assert summary["search_caches_deleted"] == 2 and summary["pages_deleted"] == 2
    assert not any(html.exists() for html in searches.values())
    for folder in searches:
        hits = search(str(run), folder, query=SECRET, k=20)["hits"]
        assert gone not in [h["uid"] for h in hits] and SECRET not in [h["caption"] for h in hits]
        assert len(hits) == 7
