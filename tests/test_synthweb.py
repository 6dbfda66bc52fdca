"""The synthetic web over real sockets: content is what it claims, and every fault really happens."""

from __future__ import annotations

import gzip
import http.client
import io
import json
import socket
import statistics
import struct
import threading
import time
import urllib.robotparser
import zlib
from ipaddress import ip_address
from urllib.parse import urljoin, urlsplit

import imagehash
import numpy as np
import pyarrow.parquet as pq
import pytest
import requests
from PIL import Image
from selectolax.lexbor import LexborHTMLParser as HTMLParser
from warcio.archiveiterator import ArchiveIterator

from curate.synthweb import (
    CLASSES,
    EXPECTED_ERROR_CLASS,
    FAULT_PATHS,
    SyntheticWeb,
    label_dir,
    make_photo,
    write_benchmark,
)
from curate.synthweb.captions import LANGUAGES

HUGE = 6 << 20


@pytest.fixture(scope="module")
def web():
    with SyntheticWeb(
        n_images=48, seed=1, near_duplicates=0.25, slow_seconds=1.0, stall_seconds=20, huge_bytes=HUGE
    ) as w:
        yield w


@pytest.fixture()
def session():
    s = requests.Session()
    s.trust_env = False
    yield s
    s.close()


def _decode(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


# Content.


def test_images_decode_with_advertised_size_and_format_and_are_photo_like(web, session):
    jpeg_sizes = []
    for img in web.images:
        r = session.get(img.url, timeout=10)
        assert r.status_code == 200, img.url
        assert r.headers["Content-Type"] == f"image/{img.fmt}"
        pil = _decode(r.content)
        assert pil.size == (img.width, img.height)
        assert pil.format.lower() == img.fmt
        assert img.label in CLASSES
        # Not flat: real variation in every image (photos, not colour swatches).
        assert np.asarray(pil.convert("L"), np.float32).std() > 8, img.url
        if img.fmt == "jpeg" and img.copy_of is None:
            jpeg_sizes.append(len(r.content) / (img.width * img.height))
    # Photo-like compression: well above a flat graphic's ~0.02 bytes/pixel.
    assert 0.05 < statistics.median(jpeg_sizes) < 1.0
    assert {img.fmt for img in web.images} == {"jpeg", "png", "webp"}
    sides = [max(i.width, i.height) for i in web.images]
    assert min(sides) < 300 and max(sides) > 600 and all(48 <= s <= 1600 for s in sides)


def test_make_photo_is_deterministic_and_class_dependent():
    a = np.asarray(make_photo("red circle", 5, (120, 90)))
    assert a.shape == (90, 120, 3)
    assert np.array_equal(a, np.asarray(make_photo("red circle", 5, (120, 90))))
    assert not np.array_equal(a, np.asarray(make_photo("red circle", 6, (120, 90))))
    # The class colour dominates the object: mean red of red images beats that of blue ones.
    reds = [np.asarray(make_photo("red circle", s, 96), np.float32) for s in range(6)]
    blues = [np.asarray(make_photo("blue square", s, 96), np.float32) for s in range(6)]

    def excess(ims):
        return np.mean([(im[..., 0] - im[..., 2]).mean() for im in ims])

    assert excess(reds) > excess(blues) + 15
    with pytest.raises(ValueError, match="unknown class 'mauve blob'.*red circle"):
        make_photo("mauve blob", 0)


def test_same_seed_same_web_other_seed_other_web():
    a, b, c = SyntheticWeb(12, seed=4), SyntheticWeb(12, seed=4), SyntheticWeb(12, seed=5)
    assert a.specs == b.specs and a.specs != c.specs
    assert a.image_bytes(a.specs[3]) == b.image_bytes(b.specs[3])


@pytest.mark.slow
def test_prerender_in_processes_gives_the_bytes_rendered_on_demand():
    ahead, lazy = SyntheticWeb(34, seed=8), SyntheticWeb(34, seed=8)
    ahead.prerender(workers=2)
    assert len(ahead._bytes) == 34
    assert all(ahead.image_bytes(spec) == lazy.image_bytes(spec) for spec in lazy.specs)


def test_captions_are_multilingual_with_english_majority_and_some_junk():
    web = SyntheticWeb(n_images=1500, seed=2)
    langs = [s.lang for s in web.specs]
    assert langs.count("en") > len(langs) * 0.35
    assert set(LANGUAGES) <= set(langs)
    junk = [s.caption for s in web.specs if s.lang is None]
    assert junk and len(junk) < len(langs) * 0.15
    en = [s for s in web.specs if s.lang == "en"]
    assert all(s.label.split()[1] in s.caption.lower() for s in en)  # the English caption names the shape
    assert any(s.caption == "a red circle on a grassy background" for s in web.specs)


def test_near_duplicates_are_near_and_distinct_images_far(web):
    hashes = {img.url: imagehash.phash(_decode(web.image_bytes(img))) for img in web.images}
    copies = [img for img in web.images if img.copy_of]
    originals = [img for img in web.images if img.copy_of is None]
    assert len(copies) == 12
    by_url = {img.url: img for img in web.images}
    near = [hashes[c.url] - hashes[c.copy_of] for c in copies]
    for c in copies:
        assert by_url[c.copy_of].group == c.group and by_url[c.copy_of].label == c.label
        assert c.transform.startswith("reencode=")
    assert statistics.median(near) <= 6 and max(near) <= 20
    far = [hashes[a.url] - hashes[b.url] for i, a in enumerate(originals) for b in originals[i + 1 :]]
    assert min(far) >= 8 and statistics.median(far) >= 24
    assert len({o.group for o in originals}) == len(originals)


# Pages, URL lists, WARC.


def _page_pairs(html: str, page_url: str) -> set[tuple[str, str]]:
    tree = HTMLParser(html)
    base = tree.css_first("base")
    base_url = urljoin(page_url, base.attributes["href"]) if base else page_url
    pairs = set()
    for img in tree.css("img"):
        alt = img.attributes.get("alt") or ""
        src = img.attributes.get("data-src") or img.attributes.get("src")
        if alt:
            pairs.add((urljoin(base_url, src), alt))
    return pairs


def test_pages_embed_their_images_with_alt_text_and_are_served(web, session):
    styles, encodings = set(), set()
    for page in web.pages:
        r = session.get(page.url, timeout=5)
        assert r.status_code == 200 and r.content == page.html
        assert r.headers["Content-Type"] == f"text/html; charset={page.encoding}"
        text = page.html.decode(page.encoding)
        assert f'<html lang="{page.lang}">' in text and f'<meta charset="{page.encoding}">' in text
        assert _page_pairs(text, page.url) == {(img.url, img.caption) for img in page.images}
        styles |= {s for s in ("<base href", "data-src=", "srcset=", 'src="//', 'src="../') if s in text}
        encodings.add(page.encoding)
    assert styles == {"<base href", "data-src=", "srcset=", 'src="//', 'src="../'}
    assert "utf-8" in encodings and len(encodings) == 2  # one page in its language's legacy charset
    assert sum(len(p.images) for p in web.pages) == len(web.images)


@pytest.mark.parametrize("ext", [".parquet", ".csv", ".jsonl", ".txt", ".csv.gz"])
def test_write_url_list(web, tmp_path, ext):
    rows = web.manifest_rows()
    assert len(rows) == len(web.images) + len(FAULT_PATHS)
    path = web.write_url_list(tmp_path / f"urls{ext}")
    if ext == ".parquet":
        back = pq.read_table(path).to_pylist()
    elif ext == ".jsonl":
        back = [json.loads(line) for line in path.read_text().splitlines()]
    elif ext == ".txt":
        assert path.read_text().split() == [r["url"] for r in rows]
        return
    else:
        import csv

        opener = gzip.open if ext.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8", newline="") as fh:
            back = [{k: v or None for k, v in row.items()} for row in csv.DictReader(fh)]
    assert back == rows


def test_write_url_list_refuses_unknown_format(web, tmp_path):
    with pytest.raises(ValueError, match="use one of .parquet"):
        web.write_url_list(tmp_path / "urls.xlsx")


def test_warc_is_gzip_member_compressed_and_readable_by_warcio(web, tmp_path):
    path = web.write_warc(tmp_path / "pages.warc.gz")
    with open(path, "rb") as fh:
        records = [
            (r.rec_type, r.rec_headers.get_header("WARC-Target-URI"), r.content_stream().read())
            for r in ArchiveIterator(fh)
        ]
    assert records[0][0] == "warcinfo"
    responses = {uri: body for kind, uri, body in records if kind == "response"}
    requests_ = [uri for kind, uri, _ in records if kind == "request"]
    for page in web.pages:
        assert responses[page.url] == page.html and page.url in requests_
    assert len(records) == 1 + 2 * (len(web.pages) + 2)
    # One gzip member per record, as Common Crawl ships them (random access by offset).
    data, members = path.read_bytes(), 0
    while data:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        d.decompress(data)
        data, members = d.unused_data, members + 1
    assert members == len(records)


def test_wat_links_resolve_to_the_pages_images_and_point_into_the_warc(web, tmp_path):
    wat = web.write_wat(tmp_path / "pages.warc.wat.gz", warc_path=tmp_path / "pages.warc.gz")
    with open(tmp_path / "pages.warc.gz", "rb") as fh:
        it = ArchiveIterator(fh)
        warc_ids = {it.get_record_offset(): r.rec_headers.get_header("WARC-Record-ID") for r in it}
    pages = {page.url: page for page in web.pages}
    seen = set()
    with open(wat, "rb") as fh:
        for record in ArchiveIterator(fh):
            if record.rec_type != "metadata":
                continue
            doc = json.loads(record.content_stream().read())
            envelope = doc["Envelope"]
            assert warc_ids[int(doc["Container"]["Offset"])] == record.rec_headers.get_header(
                "WARC-Refers-To"
            )
            meta = envelope["Payload-Metadata"].get("HTTP-Response-Metadata", {}).get("HTML-Metadata")
            url = envelope["WARC-Header-Metadata"]["WARC-Target-URI"]
            if meta is None or url not in pages:
                continue
            base = urljoin(url, meta["Head"].get("Base", url))
            pairs = {
                (urljoin(base, link["url"]), link["alt"])
                for link in meta["Links"]
                if link["path"] == "IMG@/src" and link.get("alt") and not link["url"].startswith("data:")
            }
            page = pages[url]
            assert pairs == {(img.url, img.caption) for img in page.images if img.url not in page.lazy}
            seen.add(url)
    assert seen == set(pages) and any(page.lazy for page in web.pages)


def test_benchmark_has_heldout_images_and_planted_copies(web, tmp_path):
    train = [img for img in web.images if img.copy_of is None][:5]
    bench = web.write_benchmark(tmp_path / "bench", n=20, seed=9, include_copies_from=train)
    assert len(bench.files) == 25 and len(bench.planted) == 5
    for f in bench.files:
        assert f.path.parent.name == label_dir(f.label) and f.path.exists()
    train_hash = {img.url: imagehash.phash(_decode(web.image_bytes(img))) for img in web.images}
    for path, url in bench.planted.items():
        assert imagehash.phash(Image.open(path)) - train_hash[url] <= 16
    heldout = [f for f in bench.files if not f.planted_from]
    assert {f.label for f in heldout} == set(CLASSES[:10])
    assert min(imagehash.phash(Image.open(f.path)) - h for f in heldout for h in train_hash.values()) > 6
    with pytest.raises(ValueError, match="pass web="):
        write_benchmark(tmp_path / "b2", n=1, include_copies_from=train)
    assert all(f.caption for f in bench.files)


def test_benchmark_as_parquet_matches_the_folder_version(web, tmp_path):
    train = web.images[:3]
    folder = web.write_benchmark(tmp_path / "f", n=10, seed=2, include_copies_from=train)
    table = web.write_benchmark(tmp_path / "p", n=10, seed=2, include_copies_from=train, fmt="parquet")
    rows = pq.read_table(table.parquet).to_pylist()
    assert [r["key"] for r in rows] == [f.key for f in folder.files]
    for row, f in zip(rows, folder.files, strict=False):
        assert row["image"] == f.path.read_bytes() and row["label"] == f.label and row["caption"] == f.caption
    assert table.planted_keys == folder.planted_keys and len(table.planted_keys) == 3
    with pytest.raises(ValueError, match="planted_keys"):
        table.planted  # noqa: B018


# Faults, each over a real socket.


def test_fault_table_is_complete(web):
    assert set(web.fault_urls) == set(FAULT_PATHS)
    assert set(EXPECTED_ERROR_CLASS) == set(FAULT_PATHS) | set(web.unreachable_urls)


def test_unreachable_urls_fail_to_resolve_or_connect(web, session):
    urls = web.unreachable_urls
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo(urlsplit(urls["dns"]).hostname, 80)
    with pytest.raises(requests.exceptions.ConnectionError, match="refused"):
        session.get(urls["connect_refused"], timeout=5)
    rows = web.manifest_rows(include_unreachable=True)
    assert [r["url"] for r in rows[-2:]] == list(urls.values()) and len(rows) == len(web.manifest_rows()) + 2


@pytest.mark.parametrize("name,status", [("http_404", 404), ("http_500", 500), ("http_503", 503)])
def test_error_statuses(web, session, name, status):
    r = session.get(web.fault_urls[name], timeout=5)
    assert r.status_code == status
    if status == 503:
        assert r.headers["Retry-After"] == "1"


def test_429_with_retry_after_then_ok(web, session):
    url = web.fault_urls["http_429"]
    web.set_faults(True)  # resets the 429 counter
    r = session.get(url, timeout=5)
    assert r.status_code == 429 and r.headers["Retry-After"] == "1"
    r = session.get(url, timeout=5)
    assert r.status_code == 200 and _decode(r.content).format == "JPEG"


def test_slow_response_delays_headers(web, session):
    with pytest.raises(requests.exceptions.ReadTimeout):
        session.get(web.fault_urls["slow"], timeout=(2, 0.3))
    start = time.monotonic()
    r = session.get(web.fault_urls["slow"], timeout=5)
    assert r.status_code == 200 and time.monotonic() - start >= 0.9
    _decode(r.content)


def test_stalled_body_times_out_after_headers(web, session):
    r = session.get(web.fault_urls["stall"], timeout=(2, 0.5), stream=True)
    assert r.status_code == 200 and int(r.headers["Content-Length"]) > 0
    with pytest.raises(requests.exceptions.ConnectionError, match="timed out"):
        r.content  # noqa: B018


def test_truncated_body(web):
    host, port = urlsplit(web.base_url).netloc.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    conn.request("GET", FAULT_PATHS["truncated"])
    resp = conn.getresponse()
    declared = int(resp.getheader("Content-Length"))
    with pytest.raises(http.client.IncompleteRead) as info:
        resp.read()
    assert 0 < len(info.value.partial) < declared
    conn.close()


def test_redirects(web, session):
    r = session.get(web.fault_urls["redirect_chain"], timeout=5)
    assert r.status_code == 200 and len(r.history) == 3 and _decode(r.content).format == "JPEG"
    assert {h.headers["Location"].startswith("http") for h in r.history} == {
        True,
        False,
    }  # absolute and relative
    session.max_redirects = 5
    with pytest.raises(requests.exceptions.TooManyRedirects):
        session.get(web.fault_urls["redirect_too_many"], timeout=5)
    with pytest.raises(requests.exceptions.TooManyRedirects) as info:
        session.get(web.fault_urls["redirect_loop"], timeout=5)
    locations = [h.headers["Location"] for h in info.value.response.history]
    assert set(locations) == {"/fault/loop-a.jpg", "/fault/loop-b.jpg"}
    r = session.get(web.fault_urls["redirect_private"], timeout=5, allow_redirects=False)
    target = urlsplit(r.headers["Location"]).hostname
    assert r.status_code == 302 and (ip_address(target).is_private or ip_address(target).is_link_local)


def test_head_gives_headers_without_body(web, session):
    img = web.images[0]
    r = session.head(img.url, timeout=5)
    assert r.status_code == 200 and r.content == b""
    assert int(r.headers["Content-Length"]) == len(web.image_bytes(img))


def test_unknown_paths_are_404(web, session):
    for path in ("/nope.jpg", "/fault/hop/x.jpg", "/img/999999.jpg"):
        assert session.get(web.base_url + path, timeout=5).status_code == 404, path


def test_wrong_content_type_and_html_instead_of_image(web, session):
    r = session.get(web.fault_urls["wrong_content_type"], timeout=5)
    assert r.headers["Content-Type"].startswith("text/html") and _decode(r.content).format == "JPEG"
    r = session.get(web.fault_urls["html_instead_of_image"], timeout=5)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    with pytest.raises(Image.UnidentifiedImageError):
        _decode(r.content)


def test_corrupt_image(web, session):
    r = session.get(web.fault_urls["corrupt_image"], timeout=5)
    assert r.status_code == 200 and r.content[:2] == b"\xff\xd8"
    with pytest.raises(OSError):
        _decode(r.content)


@pytest.mark.parametrize("name", ["huge", "huge_chunked"])
def test_huge_body_is_streamed(web, session, name):
    r = session.get(web.fault_urls[name], timeout=5, stream=True)
    if name == "huge":
        assert int(r.headers["Content-Length"]) == HUGE
    else:
        assert "Content-Length" not in r.headers and r.headers["Transfer-Encoding"] == "chunked"
    total = sum(len(chunk) for chunk in r.iter_content(1 << 20))
    assert total == HUGE
    # A client that stops early (its size cap) just closes the connection; the server carries on.
    r = session.get(web.fault_urls[name], timeout=5, stream=True)
    next(r.iter_content(1 << 16))
    r.close()
    assert session.get(web.images[0].url, timeout=5).status_code == 200


def test_decompression_bomb(web, session):
    r = session.get(web.fault_urls["decompression_bomb"], timeout=10)
    assert len(r.content) < 300_000
    assert struct.unpack(">II", r.content[16:24]) == (30_000, 30_000)  # IHDR width, height
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(r.content))


def test_x_robots_tag_and_robots_txt(web, session):
    r = session.get(web.fault_urls["x_robots_noai"], timeout=5)
    assert r.status_code == 200 and "noai" in r.headers["X-Robots-Tag"]
    robots = urllib.robotparser.RobotFileParser()
    robots.parse(session.get(web.base_url + "/robots.txt", timeout=5).text.splitlines())
    assert not robots.can_fetch("curate", web.fault_urls["robots_disallowed"])
    assert robots.can_fetch("curate", web.images[0].url)
    assert not robots.can_fetch("BlockedBot", web.images[0].url)
    assert session.get(web.fault_urls["robots_disallowed"], timeout=5).status_code == 200


def test_exif_rotated_image_carries_orientation_and_gps(web, session):
    from PIL import ExifTags, ImageOps

    img = _decode(session.get(web.fault_urls["exif_rotated"], timeout=5).content)
    assert img.size == (360, 480) and img.getexif()[ExifTags.Base.Orientation] == 6
    assert img.getexif().get_ifd(ExifTags.IFD.GPSInfo)[ExifTags.GPS.GPSLatitudeRef] == "N"
    upright = np.asarray(ImageOps.exif_transpose(img), np.float32)
    plain = np.asarray(_decode(web.image_bytes(web.fault_image("exif_rotated"))), np.float32)
    assert upright.shape == plain.shape == (360, 480, 3) and np.abs(upright - plain).mean() < 6


def test_set_faults_false_makes_every_fault_url_a_valid_image(session):
    with SyntheticWeb(n_images=4, seed=3, slow_seconds=5) as web:
        web.set_faults(False)
        for name, url in web.fault_urls.items():
            r = session.get(url, timeout=3)
            assert r.status_code == 200 and not r.history, name
            assert _decode(r.content).size == (480, 360), name
            assert web.fault_image(name).url == url
        assert "Disallow: /private/" not in session.get(web.base_url + "/robots.txt", timeout=3).text
        web.set_faults(True)
        assert session.get(web.fault_urls["http_404"], timeout=3).status_code == 404


# What the server saw.


def test_request_log_and_per_host_concurrency():
    with SyntheticWeb(n_images=6, seed=4, slow_seconds=0.6) as web:
        host = urlsplit(web.base_url).netloc
        with requests.Session() as s:
            for img in web.images:
                s.get(img.url, timeout=5)
        assert web.max_concurrent == {host: 1}
        assert [rec.path for rec in web.request_log] == [img.path for img in web.images]
        assert all(rec.host == host and rec.client[0] == "127.0.0.1" for rec in web.request_log)
        for _ in range(100):  # the server notices the closed keep-alive connection
            if not web.open_connections:
                break
            time.sleep(0.02)
        web.reset_stats()
        results = []

        def fetch() -> None:
            with requests.Session() as s:
                results.append(s.get(web.fault_urls["slow"], timeout=5).status_code)

        threads = [threading.Thread(target=fetch) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == [200, 200, 200]
        assert web.max_concurrent == {host: 3}
        assert len(web.request_log) == 3


def test_not_serving_yet_is_a_clear_error():
    web = SyntheticWeb(n_images=2)
    with pytest.raises(RuntimeError, match="call start"):
        web.images  # noqa: B018


# The command.


def test_curate_serve_runs_until_interrupted(tmp_path):
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "curate",
            "serve",
            "--images",
            "8",
            "--seed",
            "2",
            "--prerender",
            "--write-url-list",
            str(tmp_path / "urls.jsonl"),
            "--write-warc",
            str(tmp_path / "pages.warc.gz"),
            "--write-wat",
            str(tmp_path / "pages.warc.wat.gz"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = []
        while not lines or not lines[-1].startswith("press Ctrl-C"):
            line = proc.stdout.readline()
            assert line, "".join(lines)
            lines.append(line)
        base = next(line for line in lines if line.startswith("synthetic web:")).split(" at ")[1].strip()
        with requests.Session() as s:
            s.trust_env = False
            assert s.get(base + "robots.txt", timeout=5).status_code == 200
        assert len((tmp_path / "urls.jsonl").read_text().splitlines()) == 8 + len(FAULT_PATHS)
        assert (tmp_path / "pages.warc.gz").stat().st_size > 0 and (tmp_path / "pages.warc.wat.gz").exists()
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and "stopped after 1 requests" in out


def test_curate_serve_reports_bad_options_in_one_line(tmp_path):
    from curate.cli import main

    assert main(["serve", "--images", "0"]) == 2
    assert main(["serve", "--images", "3", "--write-url-list", str(tmp_path / "urls.xlsx")]) == 2
