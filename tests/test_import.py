"""curate import: img2dataset outputs (parquet, webdataset, files formats), written here by hand in
img2dataset's layout, taken in as curate datasets that annotate and filter run on."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from download_server import photo_jpeg

from curate.cli import main
from curate.dataset import sidecar, stats_path
from curate.errors import CurateError
from curate.imports import import_img2dataset
from curate.schema import SHARD_SCHEMA, TAKEDOWN_SCHEMA, make_uid

BIG, SMALL = photo_jpeg(1, (300, 200)), photo_jpeg(2, (64, 64))
# (url, caption, status, error_message, image, original size): img2dataset's outcomes, one shard
SHARD0 = [
    ("http://a.example/0.jpg", "a photo of a red fox", "success", None, BIG, (600, 400)),
    ("http://a.example/1.jpg", "a tiny thumbnail here", "success", None, SMALL, (64, 64)),
    (
        "http://b.example/2.jpg",
        "gone for good",
        "failed_to_download",
        "HTTP Error 404: Not Found",
        None,
        None,
    ),
    ("http://b.example/3.jpg", "slow server", "failed_to_download", "<urlopen error timed out>", None, None),
    ("http://a.example/0.jpg", "a photo of a red fox", "success", None, BIG, (600, 400)),  # a repeated pair
    ("http://a.example/5.jpg", "x", "success", None, BIG, (600, 400)),
    ("ftp://c.example/6.jpg", "wrong scheme", "failed_to_download", "unknown url type: 'ftp'", None, None),
]
SHARD1 = [
    ("http://d.example/7.jpg", "a second shard photo", "success", None, BIG, (900, 600)),
    ("http://d.example/8.jpg", "another one in it", "success", None, SMALL, (64, 64)),
]


def metadata(shard: int, samples: list) -> list[dict]:
    """img2dataset's per-sample metadata: additional columns, caption, url, then its own fields."""
    rows = []
    for i, (url, caption, status, error, image, original) in enumerate(samples):
        ok = status == "success"
        rows.append(
            {
                "similarity": 0.3 + i / 100,
                "WIDTH": 1000 + i,
                "image": f"page-{i}",
                "caption": caption,
                "url": url,
                "key": f"{shard:05d}{i:04d}",
                "status": status,
                "error_message": error,
                "width": (300 if image is BIG else 64) if ok else None,
                "height": (200 if image is BIG else 64) if ok else None,
                "original_width": original[0] if ok else None,
                "original_height": original[1] if ok else None,
                "exif": json.dumps({"Image Make": "Cam"}) if ok else None,
                "sha256": f"{i:064x}" if ok else None,
            }
        )
    return rows


def write_output(folder: Path, fmt: str) -> Path:
    """An img2dataset output_folder in `fmt`, as img2dataset's writers lay it out."""
    folder.mkdir(parents=True)
    for shard, samples in enumerate((SHARD0, SHARD1)):
        name = f"{shard:05d}"
        meta = metadata(shard, samples)
        images = [s[4] for s in samples]
        if fmt == "parquet":
            table = pa.Table.from_pylist(
                [
                    {"key": m["key"], "jpg": img, "txt": m["caption"] if img else None, **m}
                    for m, img in zip(meta, images, strict=True)
                ]
            )
        else:
            table = pa.Table.from_pylist(meta)
            members = [
                (m["key"], {"jpg": img, "txt": m["caption"].encode(), "json": json.dumps(m).encode()})
                for m, img in zip(meta, images, strict=True)
                if img
            ]
            if fmt == "webdataset":
                with tarfile.open(folder / f"{name}.tar", "w") as tar:
                    for key, files in members:
                        for ext, data in files.items():
                            info = tarfile.TarInfo(f"{key}.{ext}")
                            info.size = len(data)
                            tar.addfile(info, io.BytesIO(data))
            else:
                (folder / name).mkdir()
                for key, files in members:
                    for ext, data in files.items():
                        (folder / name / f"{key}.{ext}").write_bytes(data)
        pq.write_table(table, folder / f"{name}.parquet")
        (folder / f"{name}_stats.json").write_text(json.dumps({"count": len(samples), "successes": 5}))
    return folder


def shard_rows(dataset: Path) -> list[dict]:
    return [
        r for p in sorted((dataset / "shards").glob("[0-9]*.parquet")) for r in pq.read_table(p).to_pylist()
    ]


@pytest.mark.parametrize("fmt", ["parquet", "webdataset", "files"])
def test_each_img2dataset_format_becomes_shards_with_its_images_and_metadata(tmp_path, fmt):
    source = write_output(tmp_path / "i2d", fmt)
    assert main(["import", str(source), "-o", str(tmp_path / "ds")]) == 0
    rows = shard_rows(tmp_path / "ds")
    expected = [s for s in SHARD0 if s is not SHARD0[4]] + SHARD1  # the repeated pair is left out
    assert [(r["url"], r["caption"]) for r in rows] == [(s[0], s[1]) for s in expected]
    assert [r["uid"] for r in rows] == [make_uid(s[0], s[1]) for s in expected]
    assert [(r["status"], r["error_class"]) for r in rows] == [
        ("success", None),
        ("success", None),
        ("failed", "http_4xx"),
        ("failed", "timeout"),
        ("success", None),
        ("failed", "invalid_url"),
        ("success", None),
        ("success", None),
    ]
    assert [r["image"] for r in rows] == [s[4] for s in expected]
    big = rows[0]
    assert (big["width"], big["height"], big["original_width"], big["original_height"]) == (
        300,
        200,
        600,
        400,
    )
    assert big["image_format"] == "jpg" and big["sha256"] == f"{0:064x}" and big["bytes"] is None
    assert rows[2]["error_message"] == "img2dataset: HTTP Error 404: Not Found" and rows[2]["image"] is None
    # img2dataset's other metadata travels as manifest columns; WIDTH is renamed beside curate's width
    assert [r["key"] for r in rows[:2]] == ["000000000", "000000001"] and rows[0]["similarity"] == 0.3
    assert rows[0]["manifest_WIDTH"] == 1000 and json.loads(rows[0]["exif"]) == {"Image Make": "Cam"}
    assert rows[1]["manifest_image"] == "page-1"  # an additional column named like curate's image column
    names = pq.read_schema(tmp_path / "ds" / "shards" / "00000.parquet").names
    assert names[: len(SHARD_SCHEMA)] == SHARD_SCHEMA.names and len({n.lower() for n in names}) == len(names)
    manifest = [
        r
        for p in sorted((tmp_path / "ds" / "manifest").glob("part-*.parquet"))
        for r in pq.read_table(p).to_pylist()
    ]
    assert [m["uid"] for m in manifest] == [r["uid"] for r in rows]
    assert [m["status"] for m in manifest].count("invalid_url") == 1
    summary = json.loads(Path(sidecar(str(tmp_path / "ds" / "manifest"), "summary.json")).read_text())
    assert summary["rows_written"] == 8 and summary["duplicates"] == 1 and summary["parts"] == 2
    stats = json.loads(Path(stats_path(str(tmp_path / "ds" / "shards"), "00000")).read_text())
    assert stats["rows"] == 6 and stats["status"] == {"success": 3, "failed": 3} and stats["format"] == fmt


def test_annotate_and_filter_run_on_an_imported_dataset(tmp_path):
    ds = tmp_path / "ds"
    import_img2dataset(str(write_output(tmp_path / "i2d", "webdataset")), str(ds))
    assert main(["annotate", str(ds), "--signals", "image,caption", "--workers", "1"]) == 0
    recipe = tmp_path / "small.toml"
    recipe.write_text(
        'name = "small"\n[filter]\nmin_side = 100\nmin_caption_words = 2\nmin_caption_chars = 3\n'
    )
    assert main(["filter", str(ds), "--recipe", str(recipe)]) == 0
    found = dict(
        duckdb.sql(
            f"SELECT s.url, d.reasons FROM read_parquet('{ds}/decisions/small.parquet') d "
            f"JOIN read_parquet('{ds}/shards/[0-9]*.parquet') s USING (uid)"
        ).fetchall()
    )
    assert found == {
        "http://a.example/0.jpg": [],
        "http://a.example/1.jpg": ["image_too_small"],
        "http://b.example/2.jpg": ["download_failed"],
        "http://b.example/3.jpg": ["download_failed"],
        "http://a.example/5.jpg": ["caption_too_short"],
        "ftp://c.example/6.jpg": ["download_failed"],
        "http://d.example/7.jpg": [],
        "http://d.example/8.jpg": ["image_too_small"],
    }


def test_import_resumes_refuses_other_sources_and_honours_takedowns(tmp_path):
    ds = tmp_path / "ds"
    ds.mkdir()
    pq.write_table(
        pa.table(
            {
                "kind": ["domain"],
                "value": ["d.example"],
                "reason": ["owner asked"],
                "requested_at": pa.array([None], pa.timestamp("ms", tz="UTC")),
                "uids_purged": pa.array([None], pa.int64()),
            },
            schema=TAKEDOWN_SCHEMA,
        ),
        ds / "takedown.parquet",
    )
    source = write_output(tmp_path / "i2d", "parquet")
    first = import_img2dataset(str(source), str(ds))
    assert first["jobs_done"] == 2 and first["dataset"]["rows"] == 8
    taken = [r for r in shard_rows(ds) if "d.example" in r["url"]]
    assert [(r["status"], r["error_class"], r["image"]) for r in taken] == [
        ("skipped", "opted_out", None)
    ] * 2
    Path(stats_path(str(ds / "shards"), "00001")).unlink()  # as if stopped before the last shard's marker
    again = import_img2dataset(str(source), str(ds))
    assert (
        again["jobs_skipped_already_done"] == 1 and again["jobs_done"] == 1 and again["dataset"]["rows"] == 8
    )
    with pytest.raises(CurateError, match="import into a new dataset folder"):
        import_img2dataset(str(write_output(tmp_path / "other", "files")), str(ds))
    with pytest.raises(CurateError, match="no img2dataset shard"):
        import_img2dataset(
            str(tmp_path / "ds" / "manifest"), str(tmp_path / "ds2")
        )  # curate parts, not shards
    assert (
        main(["import", str(tmp_path / "missing"), "-o", str(tmp_path / "ds3")]) == 2
    )  # one line, no traceback
