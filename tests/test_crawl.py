"""curate crawl: real Common Crawl capture, synthetic WARC/WAT, damaged archives, listings, resume, dedup."""

from __future__ import annotations

import functools
import gzip
import html
import http.server
import io
import json
import re
import shutil
import threading
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pyarrow.parquet as pq
import pytest
from conftest import shared_path
from warcio.archiveiterator import ArchiveIterator
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from curate.cli import main
from curate.crawl import CRAWL_SCHEMA, SUMMARY, crawl
from curate.crawl.counters import CrawlStats
from curate.crawl.html_images import parse_html
from curate.crawl.pairs import PairCollector
from curate.crawl.wat import InvalidWat, parse_wat
from curate.crawl.wat_writer import write_wat
from curate.dataset import sidecar
from curate.errors import CurateError
from curate.schema import make_uid
from curate.synthweb import SyntheticWeb

# ---------------------------------------------------------------- helpers (independent of curate.crawl)


class ImgTags(HTMLParser):
    """The stdlib's view of a page: every <img>'s attributes, the <base href>, the <html lang>."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.imgs: list[dict[str, str]] = []
        self.base: str | None = None
        self.lang: str | None = None

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        if tag == "img":
            self.imgs.append(a)
        elif tag == "base" and self.base is None and "href" in a:
            self.base = a["href"]
        elif tag == "html":
            self.lang = a.get("lang")


def stdlib_tags(html: str) -> ImgTags:
    parser = ImgTags()
    parser.feed(html)
    return parser


def rows(out_dir: Path) -> list[dict]:
    out = []
    for part in sorted(out_dir.glob("part-*.parquet")):
        table = pq.read_table(part)
        assert table.schema.equals(CRAWL_SCHEMA), table.schema
        out += table.to_pylist()
    return out


def pairs(out_dir: Path) -> set[tuple[str, str]]:
    return {(r["url"], r["caption"]) for r in rows(out_dir)}


def warc_response(
    writer: WARCWriter,
    url: str,
    body: bytes,
    ctype: str = "text/html; charset=utf-8",
    status: str = "200 OK",
    date: str = "2024-05-18T01:58:10Z",
) -> None:
    headers = StatusAndHeaders(
        status, [("Content-Type", ctype), ("Content-Length", str(len(body)))], protocol="HTTP/1.1"
    )
    record = writer.create_warc_record(
        url, "response", payload=io.BytesIO(body), http_headers=headers, warc_headers_dict={"WARC-Date": date}
    )
    writer.write_record(record)


def page(n: int, extra: str = "") -> bytes:
    return (
        f'<!doctype html><html lang="en"><body><img src="/i/{n}.jpg" alt="picture {n}">{extra}</body></html>'
    ).encode()


def write_pages(path: Path, bodies: list[tuple[str, bytes]]) -> Path:
    with open(path, "wb") as fh:
        writer = WARCWriter(fh, gzip=True)
        for url, body in bodies:
            warc_response(writer, url, body)
    return path


def member_offsets(path: Path) -> list[int]:
    with open(path, "rb") as fh:
        it = ArchiveIterator(fh)
        return [it.get_record_offset() for _ in it]


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    """A synthetic web's pages written as a WARC (synthweb's writer) and a WAT (curate's writer)."""
    folder = tmp_path_factory.mktemp("synth")
    with SyntheticWeb(n_images=90, seed=3) as web:
        warc = web.write_warc(folder / "web.warc.gz")
        wat = write_wat(
            [(p.url, p.html, {"Content-Type": f"text/html; charset={p.encoding}"}) for p in web.pages],
            folder / "web.warc.wat.gz",
        )
        yield web.pages, warc, wat


# ---------------------------------------------------------------- the real Common Crawl capture


def test_whirlwind_warc_gives_exactly_the_pairs_in_its_html(tmp_path):
    warc = shared_path("data", "commoncrawl", "whirlwind.warc.gz")
    with open(warc, "rb") as fh:
        it = ArchiveIterator(fh)
        for record in it:
            if record.rec_type == "response":
                page_url = record.rec_headers.get_header("WARC-Target-URI")
                html = record.content_stream().read().decode("utf-8")
                offset = it.get_record_offset()
    tags = stdlib_tags(html)
    assert len(tags.imgs) == 13 and tags.base is None
    expected = {}
    for img in tags.imgs:
        caption = " ".join(img.get("alt", "").split())
        if caption:
            expected[(urljoin(page_url, img["src"]), caption)] = (img.get("width"), img.get("height"))
    assert len(expected) == 7  # 6 of the 13 have an empty or no alt
    assert any(src.startswith("//") for src, _ in [(i["src"], 0) for i in tags.imgs])  # protocol-relative
    summary = crawl([str(warc)], str(tmp_path), workers=1)
    got = rows(tmp_path)
    assert {(r["url"], r["caption"]) for r in got} == set(expected)
    for r in got:
        w, h = expected[(r["url"], r["caption"])]
        assert r["width"] == (int(w) if w else None) and r["height"] == (int(h) if h else None)
        assert r["uid"] == make_uid(r["url"], r["caption"]) and r["status"] == "ok"
        assert r["page_url"] == page_url == "https://an.wikipedia.org/wiki/Escopete"
        assert r["page_lang"] == tags.lang == "an"
        assert r["crawl_time"] == datetime(2024, 5, 18, 1, 58, 10, tzinfo=UTC)
        assert r["source"] == f"{warc}:{offset}"
    assert summary["pages"] == 1 and summary["images_seen"] == 13 and summary["pairs_written"] == 7
    assert summary["skipped"]["no_alt"] == 6 and not any(summary["errors"].values())
    assert summary["records_by_type"] == {"warcinfo": 1, "request": 1, "response": 1, "metadata": 1}


def test_whirlwind_wat_is_read_without_errors(tmp_path):
    wat = shared_path("data", "commoncrawl", "whirlwind.warc.wat.gz")
    summary = crawl([str(wat)], str(tmp_path), workers=1)
    # The real WAT holds the warcinfo and the request's metadata record: no HTML response, so no pages.
    assert summary["records_by_type"] == {"warcinfo": 1, "metadata": 1}
    assert summary["pages"] == 0 and summary["pairs_written"] == 0 and not any(summary["errors"].values())


def test_cc_listing_with_prefix_and_limit_over_local_http(tmp_path):
    listing = shared_path("data", "commoncrawl", "CC-MAIN-2024-22.warc.paths.gz")
    names = gzip.decompress(listing.read_bytes()).decode().split()
    served = tmp_path / "served"
    served.mkdir()
    write_pages(served / names[0], [("http://a.example/x.html", page(1))])
    write_pages(served / names[1], [("http://b.example/y.html", page(2))])
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        prefix = f"http://127.0.0.1:{server.server_address[1]}/"
        out = tmp_path / "out"
        summary = crawl([str(listing)], str(out), prefix=prefix, limit=2, workers=1)
        # the third listed file is not on the server: that file fails (reported), the others are kept
        partial = crawl([str(listing)], str(tmp_path / "out3"), prefix=prefix, limit=3, workers=1, retries=0)
    finally:
        server.shutdown()
        server.server_close()
    assert summary["inputs"] == 2 and summary["files_done"] == 2 and not summary["files_failed"]
    assert pairs(out) == {
        ("http://a.example/i/1.jpg", "picture 1"),
        ("http://b.example/i/2.jpg", "picture 2"),
    }
    assert {r["source"].rpartition(":")[0] for r in rows(out)} == {prefix + names[0], prefix + names[1]}
    assert partial["files_done"] == 2 and list(partial["files_failed"]) == ["00002"]
    assert "FileNotFoundError" in partial["files_failed"]["00002"] and pairs(tmp_path / "out3") == pairs(out)
    # file:// prefix, and --limit 1 reads one file only
    out1 = tmp_path / "out1"
    summary = crawl([str(listing)], str(out1), prefix=f"file://{served}", limit=1, workers=1)
    assert summary["inputs"] == 1 and pairs(out1) == {("http://a.example/i/1.jpg", "picture 1")}


# ---------------------------------------------------------------- synthetic web: WARC and WAT


def test_synthetic_warc_gives_every_image_with_alt_at_its_absolute_url(synth, tmp_path):
    pages, warc, _ = synth
    summary = crawl([str(warc)], str(tmp_path), workers=1)
    got = rows(tmp_path)
    expected = {(img.url, img.caption): (img, p) for p in pages for img in p.images}
    assert {(r["url"], r["caption"]) for r in got} == set(expected)
    for r in got:
        img, p = expected[(r["url"], r["caption"])]
        assert (r["page_url"], r["page_lang"], r["width"], r["height"]) == (
            p.url,
            p.lang,
            img.width,
            img.height,
        )
    assert summary["pages"] == len(pages)
    assert summary["skipped"]["not_html"] == 1  # the image response in the WARC
    assert summary["skipped"]["http_status"] == 1  # its soft 404 page
    image_reasons = ("no_alt", "no_src", "data_uri", "not_http", "invalid_url", "duplicate")
    assert summary["images_seen"] == summary["pairs_written"] + sum(
        summary["skipped"][k] for k in image_reasons
    )
    assert not any(summary["errors"].values())


def test_synthetic_wat_gives_every_image_whose_src_is_a_url(synth, tmp_path):
    pages, _, wat = synth
    summary = crawl([str(wat)], str(tmp_path), workers=1)
    expected, lazy = set(), 0
    for p in pages:
        for img in p.images:
            # WAT keeps only src: the lazy-loaded images (src = a data: placeholder) cannot come out of it.
            tag = next(t for t in stdlib_tags(p.html.decode(p.encoding)).imgs if t.get("alt") == img.caption)
            if tag["src"].startswith("data:"):
                lazy += 1
            else:
                expected.add((img.url, img.caption))
    assert lazy and expected
    assert pairs(tmp_path) == expected
    assert summary["pages"] == len(pages) and summary["skipped"]["data_uri"] == lazy
    assert not any(summary["errors"].values())


# ---------------------------------------------------------------- HTML rules


@pytest.mark.parametrize(
    "tag, expected",
    [
        ('<img src="a.jpg" alt="  two\n  words ">', ("http://h.example/d/a.jpg", "two words")),
        ('<img src="//cdn.example/p.png" alt="x">', ("http://cdn.example/p.png", "x")),
        (
            '<img src="/r.png#frag" alt="Tom &amp; Jerry &eacute;">',
            ("http://h.example/r.png", "Tom & Jerry é"),
        ),
        (
            '<img src="data:image/gif;base64,R0l" data-src="lazy.jpg" alt="l">',
            ("http://h.example/d/lazy.jpg", "l"),
        ),
        ('<img srcset="s.jpg 320w, b.jpg 1024w, m.jpg 640w" alt="set">', ("http://h.example/d/b.jpg", "set")),
        ('<img srcset="one.jpg, two.jpg 2x" alt="x2">', ("http://h.example/d/two.jpg", "x2")),
    ],
)
def test_img_url_and_alt_rules(tag, expected):
    stats = CrawlStats("t")
    collector = PairCollector(stats)
    parsed = parse_html(f"<html><body>{tag}</body></html>")
    collector.add_page(
        "http://h.example/d/page.html", parsed.base_href, parsed.lang, None, "t:0", parsed.images
    )
    cols = collector.take().to_pydict()
    assert list(zip(cols["url"], cols["caption"], strict=True)) == [expected]


@pytest.mark.parametrize(
    "page_url",
    [
        "https://h.example/a/b/page.html?q=1#f",
        "http://h.example",
        "http://h.example?x=/y/",
        "https://h.example#/a/b",
        "https://user@h.example:8080/d/",
        "http://[::1]:8000/d/p.html",
        "https://bücher.example/d/p",
        "https://h.example/d/\tp",
        "HTTPS://H.example/D/p",
        "http:///no-host/p",
        "https://h.example/d/ü/p",
    ],
)
def test_relative_srcs_resolve_as_urljoin_on_any_page_url(page_url):
    srcs = ["a.jpg", "/r.jpg", "//cdn.example/p.png", "../up.jpg", "?q=2", "https://x.example/abs.jpg"]
    images = [(f"alt {n}", src, None, None) for n, src in enumerate(srcs)]
    collector = PairCollector(CrawlStats("t"))
    collector.add_page(page_url, None, None, None, "t:0", images)
    joined = [(urljoin(page_url, src), f"alt {n}") for n, src in enumerate(srcs)]
    expected = [
        (url, alt)
        for url, alt in joined
        if urlsplit(url).scheme in ("http", "https") and urlsplit(url).netloc
    ]
    assert len(expected) >= 2
    cols = collector.take().to_pydict()
    assert list(zip(cols["url"], cols["caption"], strict=True)) == expected


def test_skips_are_counted_by_reason():
    html = """<html lang="fr"><head><base href="/base/"></head><body>
      <img src="a.jpg" alt=""> <img src="b.jpg"> <img src="c.jpg" alt="  ">
      <img alt="no url"> <img src="data:image/png;base64,AAA" alt="inline">
      <img src="javascript:void(0)" alt="script"> <img src="ftp://f.example/x.jpg" alt="ftp">
      <img src="http://[::1/x.jpg" alt="bad host"> <img src="ok.jpg" alt="kept">
      <img src="ok.jpg" alt="kept"> <img src="ok.jpg" alt="kept, other caption"> <img src="s.jpg" alt="ab">
    </body></html>"""
    stats = CrawlStats("t")
    collector = PairCollector(stats, min_alt_chars=3)
    parsed = parse_html(html)
    collector.add_page(
        "https://h.example/p/q.html", parsed.base_href, parsed.lang, None, "t:0", parsed.images
    )
    cols = collector.take().to_pydict()
    assert cols["url"] == ["https://h.example/base/ok.jpg"] * 2
    assert cols["caption"] == ["kept", "kept, other caption"] and cols["page_lang"] == ["fr", "fr"]
    assert stats.images_seen == 12
    assert dict(stats.skipped) == {
        "no_alt": 4,
        "no_src": 1,
        "data_uri": 1,
        "not_http": 2,
        "invalid_url": 1,
        "duplicate": 1,
    }


def wat_response(links: list[dict], extra: bytes = b"") -> bytes:
    """One WAT response record's JSON in Common Crawl's compact layout, `extra` spliced into its Links."""
    doc = {
        "Envelope": {
            "WARC-Header-Metadata": {"WARC-Date": "2024-05-18T01:58:10Z"},
            "Payload-Metadata": {
                "HTTP-Response-Metadata": {
                    "Response-Message": {"Status": "200"},
                    "Headers": {"Content-Language": "de"},
                    "HTML-Metadata": {"Head": {}, "Links": links},
                }
            },
        }
    }
    return (
        json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
        .encode()
        .replace(b'"Links":[', b'"Links":[' + extra)
    )


CANONICAL_LINKS = [
    {"path": "A@/href", "url": "/a", "text": "a link"},
    {"path": "IMG@/src", "url": "/one.jpg", "alt": "one"},
    {"path": "IMG@/src", "url": "/no-alt.jpg"},
    {"path": "IMG@/src", "url": "/empty.jpg", "alt": ""},
    {
        "path": "IMG@/src",
        "url": "https://x.example/t.jpg?a=1&amp;b=2",
        "alt": "Tom &amp; Jerry",
        "title": "t",
    },
    {"path": "IMG@/src", "url": "/ünï.jpg", "alt": "größe"},
]
ODD_LINKS = [  # each on its own sends the record from the one-regex path to the link-by-link reading
    {"path": "IMG@/src", "url": "/title-first.jpg", "title": "t", "alt": "title first"},
    {"alt": "alt first", "path": "IMG@/src", "url": "/alt-first.jpg"},
    {"path": "IMG@/src", "url": "/quote.jpg", "alt": 'say "cheese"'},
    {"path": "IMG@/src", "url": "/brace{1}.jpg", "alt": "brace"},
    {"path": "IMG@/src", "url": "/rel.jpg", "alt": "with rel", "rel": "x"},
]


@pytest.mark.parametrize("odd", [None, *ODD_LINKS])
def test_wat_image_links_in_every_form_give_the_links_alt_and_url(odd):
    links = CANONICAL_LINKS + ([odd] if odd else [])
    page = parse_wat(wat_response(links))
    imgs = [link for link in links if link["path"] == "IMG@/src"]
    assert len(page.images) == len(imgs)  # every <img> is seen, with or without alt
    assert [(alt, url) for alt, url, _, _ in page.images if alt] == [
        (html.unescape(link["alt"]), html.unescape(link["url"])) for link in imgs if link.get("alt")
    ]
    assert (page.status, page.lang, page.warc_date) == (200, "de", "2024-05-18T01:58:10Z")


def test_wat_url_bytes_of_an_image_without_alt_are_not_decoded():
    # Only the URLs of images with alt text are read, so a broken one elsewhere does not cost the page.
    page = parse_wat(wat_response(CANONICAL_LINKS, b'{"path":"IMG@/src","url":"/\xff.jpg"},'))
    assert [alt for alt, _, _, _ in page.images if alt] == ["one", "Tom & Jerry", "größe"]
    with pytest.raises(InvalidWat):  # bytes that are not UTF-8 where an alt is: the whole record is judged
        parse_wat(wat_response(CANONICAL_LINKS, b'{"path":"IMG@/src","url":"/x.jpg","alt":"\xff"},'))


# ---------------------------------------------------------------- damaged input


def test_truncated_archive_keeps_every_record_before_the_cut(tmp_path):
    bodies = [(f"http://s.example/{n}.html", page(n)) for n in range(6)]
    full = write_pages(tmp_path / "full.warc.gz", bodies)
    offsets = member_offsets(full)
    cut = tmp_path / "in" / "cut.warc.gz"
    cut.parent.mkdir()
    cut.write_bytes(
        full.read_bytes()[: (offsets[4] + 3 * offsets[5]) // 4]
    )  # late in the fifth record's member
    summary = crawl([str(cut)], str(tmp_path / "out"), workers=1)
    assert pairs(tmp_path / "out") == {(f"http://s.example/i/{n}.jpg", f"picture {n}") for n in range(4)}
    assert summary["errors"]["truncated_gzip"] == 1 and summary["errors"]["incomplete_record"] == 1
    assert summary["files_done"] == 1 and not summary["files_failed"]


def test_corrupt_member_malformed_record_and_bad_json_are_skipped_and_counted(tmp_path):
    bodies = [(f"http://s.example/{n}.html", page(n)) for n in range(5)]
    good = write_pages(tmp_path / "good.warc.gz", bodies)
    data = bytearray(good.read_bytes())
    offsets = member_offsets(good) + [len(data)]
    start, end = offsets[2], offsets[3]
    data[start + 20 : end - 20] = bytes(
        b ^ 0x5A for b in data[start + 20 : end - 20]
    )  # damage member 2's deflate data
    junk = gzip.compress(b"HELLO this is not a WARC record\r\n\r\n")
    bad_header = gzip.compress(b"WARC/1.0\r\nWARC-Type: response\r\nContent-Length: lots\r\n\r\nbody\r\n\r\n")
    damaged = tmp_path / "in" / "damaged.warc.gz"
    damaged.parent.mkdir()
    damaged.write_bytes(
        bytes(data[: offsets[4]]) + junk + bad_header + b"\x00garbage\xff" + bytes(data[offsets[4] :])
    )
    wat = write_wat(
        [("http://w.example/p.html", page(7), None), ("http://w.example/q.html", page(8), None)],
        tmp_path / "w.wat.gz",
    )
    wat_members = member_offsets(wat)
    raw = gzip.decompress(wat.read_bytes()[wat_members[-1] :]).replace(b'"alt":"', b'"alt":x')  # same length
    broken_wat = tmp_path / "in" / "broken.warc.wat.gz"
    broken_wat.write_bytes(wat.read_bytes()[: wat_members[-1]] + gzip.compress(raw))
    summary = crawl([str(damaged.parent)], str(tmp_path / "out"), workers=2)
    assert pairs(tmp_path / "out") == {
        (f"http://s.example/i/{n}.jpg", f"picture {n}") for n in (0, 1, 3, 4)
    } | {("http://w.example/i/7.jpg", "picture 7")}
    errors = summary["errors"]
    assert errors["corrupt_gzip"] >= 2  # the damaged member, the stray bytes
    assert errors["malformed_record"] == 2  # the junk record, the bad Content-Length
    assert errors["invalid_json"] == 1
    assert summary["files_done"] == 2 and not summary["files_failed"]


def lie_about_length(path: Path, member: int, claimed: int) -> None:
    """Rewrite the archive's `member`-th gzip member (one record) with its Content-Length set to `claimed`."""
    data = path.read_bytes()
    offsets = member_offsets(path) + [len(data)]
    head, sep, block = gzip.decompress(data[offsets[member] : offsets[member + 1]]).partition(b"\r\n\r\n")
    lying = re.sub(rb"(?im)^content-length: *\d+", b"Content-Length: %d" % claimed, head)
    assert lying != head
    path.write_bytes(
        data[: offsets[member]] + gzip.compress(lying + sep + block) + data[offsets[member + 1] :]
    )


@pytest.mark.parametrize(
    "claimed", [10**5, 10**8, 10**11]
)  # under the 16 MiB cap (buffered), over it (streamed)
@pytest.mark.parametrize("liar", [20, 40])  # a record in the middle, the last record
def test_a_lying_content_length_costs_its_own_record_only(tmp_path, claimed, liar):
    (tmp_path / "in").mkdir()
    path = write_pages(
        tmp_path / "in" / "lies.warc.gz", [(f"http://s.example/{n}.html", page(n)) for n in range(41)]
    )
    lie_about_length(path, liar, claimed)
    summary = crawl([str(path)], str(tmp_path / "out"), workers=1)
    assert pairs(tmp_path / "out") == {
        (f"http://s.example/i/{n}.jpg", f"picture {n}") for n in range(41) if n != liar
    }
    assert summary["records"] == 40 and summary["pages"] == 40
    assert {k: v for k, v in summary["errors"].items() if v} == {"content_length_overrun": 1}
    assert summary["skipped"]["too_large"] == 0  # the lie is one problem, not also a skipped record
    stats = json.loads((tmp_path / "out" / "_crawl" / "00000.stats.json").read_text())
    assert [e["kind"] for e in stats["error_examples"]] == ["content_length_overrun"]
    assert f"Content-Length {claimed}" in stats["error_examples"][0]["message"]
    assert stats["error_examples"][0]["offset"] == member_offsets(path)[liar]


def test_a_lying_content_length_in_a_wat_keeps_every_later_page(tmp_path):
    pages = [(f"http://w.example/{n}.html", page(n), None) for n in range(30)]
    wat = write_wat(pages, tmp_path / "in" / "lies.warc.wat.gz")  # warcinfo, then request + response per page
    lie_about_length(wat, 1 + 2 * 10 + 1, 10**8)  # page 10's response metadata
    lie_about_length(wat, 1 + 2 * 20, 10**11)  # page 20's request metadata
    summary = crawl([str(wat)], str(tmp_path / "out"), workers=1)
    assert pairs(tmp_path / "out") == {
        (f"http://w.example/i/{n}.jpg", f"picture {n}") for n in range(30) if n != 10
    }
    assert summary["records"] == 1 + 2 * 30 - 2 and summary["pages"] == 29
    assert {k: v for k, v in summary["errors"].items() if v} == {"content_length_overrun": 2}


def test_wrong_and_unknown_charsets_are_counted_and_the_pages_still_read(tmp_path):
    cafe = '<html><body><img src="/c.jpg" alt="café crème"></body></html>'
    path = tmp_path / "in" / "charsets.warc.gz"
    path.parent.mkdir()
    with open(path, "wb") as fh:
        writer = WARCWriter(fh, gzip=True)
        warc_response(writer, "http://a.example/", cafe.encode("cp1252"), "text/html; charset=iso-8859-1")
        warc_response(writer, "http://b.example/", cafe.encode("utf-8"), "text/html; charset=x-klingon")
        warc_response(writer, "http://c.example/", cafe.encode("utf-8"), "text/html; charset=ascii")
        warc_response(
            writer, "http://d.example/", b'<meta charset="shift_jis">' + cafe.encode("cp1252"), "text/html"
        )
        warc_response(writer, "http://e.example/", ("\ufeff" + cafe).encode("utf-16-le"), "text/html")
    summary = crawl([str(path)], str(tmp_path / "out"), workers=1)
    # d's windows-1252 bytes are not shift_jis: decoded as shift_jis with U+FFFD where they do not fit
    d_caption = "café crème".encode("cp1252").decode("shift_jis", "replace")
    assert pairs(tmp_path / "out") == {(f"http://{h}.example/c.jpg", "café crème") for h in "abce"} | {
        ("http://d.example/c.jpg", d_caption)
    }
    assert (
        summary["errors"]["charset"] == 3
    )  # the unknown label, UTF-8 labelled ascii, the shift_jis that is not
    assert summary["pages"] == 5


def test_chunked_and_gzipped_bodies_of_other_crawlers_are_decoded(tmp_path):
    html = page(1)
    chunked = (
        b"".join(b"%x\r\n%s\r\n" % (len(html[i : i + 40]), html[i : i + 40]) for i in range(0, len(html), 40))
        + b"0\r\n\r\n"
    )
    path = tmp_path / "in" / "raw.warc.gz"
    path.parent.mkdir()
    with open(path, "wb") as fh:
        writer = WARCWriter(fh, gzip=True)
        for url, body, headers in [
            ("http://c.example/", chunked, [("Transfer-Encoding", "chunked")]),
            ("http://g.example/", gzip.compress(html), [("Content-Encoding", "gzip")]),
            ("http://b.example/", b"\x8b\x00\x80binary", [("Content-Encoding", "br")]),
        ]:
            http_headers = StatusAndHeaders(
                "200 OK", [("Content-Type", "text/html")] + headers, protocol="HTTP/1.1"
            )
            writer.write_record(
                writer.create_warc_record(
                    url, "response", payload=io.BytesIO(body), http_headers=http_headers
                )
            )
    summary = crawl([str(path)], str(tmp_path / "out"), workers=1)
    assert pairs(tmp_path / "out") == {
        ("http://c.example/i/1.jpg", "picture 1"),
        ("http://g.example/i/1.jpg", "picture 1"),
    }
    assert summary["errors"]["content_encoding"] == 1 and summary["pages"] == 2


def test_a_50_mb_page_is_skipped_without_stopping_the_file(tmp_path):
    huge = (
        b"<html><body>"
        + b"<p>filler</p>" * (50 * (1 << 20) // 13)
        + b'<img src="/big.jpg" alt="big"></body></html>'
    )
    path = write_pages(
        tmp_path / "big.warc.gz",
        [("http://x.example/1", page(1)), ("http://x.example/huge", huge), ("http://x.example/3", page(3))],
    )
    summary = crawl([str(path)], str(tmp_path / "out"), workers=1)
    assert pairs(tmp_path / "out") == {
        ("http://x.example/i/1.jpg", "picture 1"),
        ("http://x.example/i/3.jpg", "picture 3"),
    }
    assert summary["skipped"]["too_large"] == 1 and summary["pages"] == 2


# ---------------------------------------------------------------- runs: parts, resume, dedup, CLI


def test_parts_per_file_resume_and_cross_file_dedup(tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    write_pages(inputs / "a.warc.gz", [(f"http://a.example/{n}", page(n)) for n in range(5)])
    write_pages(
        inputs / "b.warc.gz",
        [(f"http://b.example/{n}", page(n, '<img src="/only-b.jpg" alt="b">')) for n in range(3)],
    )
    shutil.copy(inputs / "a.warc.gz", inputs / "c.warc.gz")  # the same pairs again
    out = tmp_path / "out"
    first = crawl([str(inputs)], str(out), workers=2, rows_per_part=2)
    names = sorted(p.name for p in out.glob("part-*.parquet"))
    assert names[:3] == ["part-000000000.parquet", "part-000000001.parquet", "part-000000002.parquet"]
    assert names[-1] == "part-000002002.parquet" and len(names) == 3 + 2 + 3  # 5, 4 and 5 pairs, 2 a part
    got = rows(out)
    assert (
        len(got) == len({(r["url"], r["caption"]) for r in got}) == 5 + 4
    )  # c's copies of a's pairs: dropped
    assert first["pairs_kept_per_file"] == 5 + 4 + 5 and first["duplicates_across_files"] == 5
    assert first["skipped"]["duplicate"] == 2  # only-b.jpg on b's second and third page
    assert all(r["source"].split(":")[0].endswith("a.warc.gz") for r in got if "a.example" in r["url"])
    # a killed run leaves one file without its marker: the rerun redoes that file alone, same result
    (out / "_crawl" / "00001.stats.json").unlink()
    for part in out.glob("part-000001*.parquet"):
        part.unlink()
    again = crawl([str(inputs)], str(out), workers=2, rows_per_part=2)
    assert again["files_skipped_already_done"] == 2 and again["files_done"] == 3
    assert sorted(map(str, (tuple(sorted(r.items())) for r in rows(out)))) == sorted(
        map(str, (tuple(sorted(r.items())) for r in got))
    )
    with pytest.raises(CurateError, match="other inputs"):
        crawl([str(inputs / "a.warc.gz")], str(out))
    fresh = crawl([str(inputs / "b.warc.gz")], str(out), overwrite=True)
    assert fresh["inputs"] == 1 and not fresh["files_skipped_already_done"]
    assert sorted(p.name for p in out.glob("part-*.parquet")) == ["part-000000000.parquet"]
    assert {u for u, _ in pairs(out)} == {f"http://b.example/i/{n}.jpg" for n in range(3)} | {
        "http://b.example/only-b.jpg"
    }


def test_cli_prints_the_summary(tmp_path, capsys):
    path = write_pages(tmp_path / "a.warc.gz", [("http://a.example/", page(1, '<img src="x.jpg" alt="">'))])
    assert main(["crawl", str(path), "-o", str(tmp_path / "m"), "--workers", "1"]) == 0
    printed = capsys.readouterr().out
    assert "1 pages" in printed and "wrote 1 pairs" in printed and "no_alt 1" in printed
    assert Path(sidecar(str(tmp_path / "m"), SUMMARY)).exists()
    assert main(["crawl", str(tmp_path / "nope.warc.gz"), "-o", str(tmp_path / "n")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_archives_and_manifest_on_s3(tmp_path, s3_endpoint):
    import fsspec

    local = write_pages(tmp_path / "a.warc.gz", [(f"http://s3.example/{n}", page(n)) for n in range(3)])
    fs = fsspec.filesystem("s3")
    fs.put(str(local), "curate-test/crawl-in/a.warc.gz")
    fs.put(str(local), "curate-test/crawl-in/b.warc.gz")
    summary = crawl(["s3://curate-test/crawl-in/*.warc.gz"], "s3://curate-test/crawl-out", workers=1)
    assert (
        summary["inputs"] == 2 and summary["pairs_written"] == 3 and summary["duplicates_across_files"] == 3
    )
    names = sorted(p.rpartition("/")[2] for p in fs.ls("curate-test/crawl-out"))
    assert names == [".curate", "_crawl", "part-000000000.parquet", "part-000001000.parquet"]
    with fs.open("curate-test/crawl-out/part-000000000.parquet", "rb") as fh:
        table = pq.read_table(fh)
    assert sorted(table.column("url").to_pylist()) == [f"http://s3.example/i/{n}.jpg" for n in range(3)]
    assert (
        table.column("source").to_pylist()[0]
        == f"s3://curate-test/crawl-in/a.warc.gz:{member_offsets(local)[0]}"
    )
    with fs.open("curate-test/crawl-out/part-000001000.parquet", "rb") as fh:
        assert pq.read_table(fh).num_rows == 0  # all of b's pairs were kept from a already


@pytest.mark.slow
def test_ray_executor_gives_the_local_result(synth, tmp_path):
    pytest.importorskip("ray")
    _, warc, wat = synth
    local = crawl([str(warc), str(wat)], str(tmp_path / "local"), workers=1)
    remote = crawl([str(warc), str(wat)], str(tmp_path / "ray"), executor="ray", workers=2)
    for key in ("pages", "images_seen", "pairs_written", "skipped", "errors", "parts"):
        assert remote[key] == local[key], key
    assert rows(tmp_path / "ray") == rows(tmp_path / "local")


@pytest.mark.slow
def test_curate_download_fetches_every_crawled_pair(tmp_path):
    from curate.download import DownloadConfig, download

    with SyntheticWeb(n_images=24, seed=5, faults=False) as web:
        warc = web.write_warc(tmp_path / "web.warc.gz")
        wat = write_wat(
            [(p.url, p.html, {"Content-Type": f"text/html; charset={p.encoding}"}) for p in web.pages],
            tmp_path / "web.warc.wat.gz",
        )
        summary = crawl([str(warc), str(wat)], str(tmp_path / "manifest"), workers=1, rows_per_part=10)
        expected = {(img.url, img.caption) for img in web.images}
        assert pairs(tmp_path / "manifest") == expected and summary["duplicates_across_files"] > 0
        config = DownloadConfig(allow_networks=("127.0.0.1/32",))
        download(str(tmp_path / "manifest"), str(tmp_path / "ds"), config, workers=1)
    shards = sorted((tmp_path / "ds" / "shards").glob("*.parquet"))
    got = [r for s in shards for r in pq.read_table(s, columns=["url", "caption", "status"]).to_pylist()]
    assert len(shards) == len(list((tmp_path / "manifest").glob("part-*.parquet")))
    assert {(r["url"], r["caption"]) for r in got} == expected and len(got) == len(expected)
    assert all(r["status"] == "success" for r in got)
