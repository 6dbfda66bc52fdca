"""`curate report`: a self-contained HTML card, checked as markup and as rendered by headless Chromium."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from inspect_dataset import HOSTILE_CAPTION, HOSTILE_LINK, HOSTILE_URL, shared_dataset

from curate.cli import main
from curate.inspect.report import build_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Debian's chromium is not installed (.ci/run installs "
    "it with apt-get; it could not be installed here)",
)


class _Markup(HTMLParser):
    """Every start tag with its attributes, and the page's text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def _parse(markup: str) -> _Markup:
    parser = _Markup()
    parser.feed(markup)
    return parser


def _assert_inert(parsed: _Markup) -> None:
    """No script, no event handler, no link that is not http(s), no image that is not an inline data: URI."""
    assert not [t for t, _ in parsed.tags if t in ("script", "iframe", "object", "embed", "base", "form")]
    assert not [(t, a) for t, attrs in parsed.tags for a in attrs if a.lower().startswith("on")]
    hrefs = [a["href"] for t, a in parsed.tags if "href" in a]
    assert hrefs and all(h.startswith(("http://", "https://")) for h in hrefs)
    srcs = [a.get("src", "") for t, a in parsed.tags if t == "img"]
    assert srcs and all(s.startswith("data:image/") for s in srcs)


@pytest.fixture(scope="module")
def ds(tmp_path_factory) -> dict:
    return shared_dataset(tmp_path_factory)


@pytest.fixture(scope="module")
def report(ds, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("report") / "report.html"
    result = build_report(ds["root"], str(out), "strict")
    return {"path": out, "html": out.read_text(encoding="utf-8"), "result": result}


def test_report_markup_is_self_contained_and_inert(report):
    doc = report["html"]
    parsed = _parse(doc)
    _assert_inert(parsed)
    csp = [
        a["content"]
        for t, a in parsed.tags
        if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"
    ]
    assert csp and "default-src 'none'" in csp[0] and "script-src" not in csp[0] and "img-src data:" in csp[0]
    text = "".join(parsed.text)
    assert HOSTILE_CAPTION[:120] in text  # shown as the words it is
    assert html.escape(HOSTILE_CAPTION[:40], quote=True) in doc
    assert f'href="{html.escape(HOSTILE_URL, quote=True)}"' in doc  # an https URL: linked, quotes escaped
    assert "javascript:" not in "".join(a.get("href", "") for _, a in parsed.tags)
    assert HOSTILE_LINK in text  # the javascript: URL is shown as text of its failed download card
    assert report["result"]["plots"] >= 10 and report["result"]["thumbnails"] >= 25


def test_report_sections(ds, report):
    doc, roles = report["html"], ds["roles"]
    for title in (
        "Summary",
        "Distributions",
        "Kept samples (recipe strict)",
        "Dropped samples by reason",
        "Duplicate clusters",
        "Benchmark overlap",
        "Download failures",
    ):
        assert f"<h2>{title}" in doc
    for reason in ("download_failed", "language", "near_duplicate", "nsfw_image", "benchmark_overlap"):
        assert f"<h3>{reason}: " in doc
    # The near-duplicate cluster shows the representative and the copy in one row.
    rows = re.findall(r'<div class="row">.*?</div></div></div>', doc)
    cluster = next(r for r in rows if roles["near_dup"][0][:12] in r)
    assert roles["kept"][1][:12] in cluster and "near duplicate, distance" in cluster
    # The benchmark match sits beside its eval image: two images in the row.
    bench = next(r for r in rows if roles["bench"][0][:12] in r)
    assert bench.count('src="data:image/jpeg;base64,') == 2 and "eval image shapes/circle/0007.jpg" in bench


def _chromium(*args: str, tmp: Path) -> subprocess.CompletedProcess:
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp / 'profile'}",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)


@needs_chromium
def test_report_renders_in_headless_chromium(report, tmp_path):
    # 1. The DOM after load: the page's own scripts would have renamed it; data stayed text.
    dom = _chromium("--dump-dom", report["path"].as_uri(), tmp=tmp_path).stdout
    parsed = _parse(dom)
    _assert_inert(parsed)
    assert "".join(parsed.text).count(HOSTILE_CAPTION[:60]) >= 1
    assert "<title>curate dataset report:" in dom and "pwned" not in re.search(
        r"<title>(.*?)</title>", dom
    ).group(1)
    # 2. Every plot and thumbnail decoded: a probe page (the test's own script, not the report's) reads the
    #    report's images from a same-origin frame once it has loaded.
    probe = tmp_path / "probe.html"
    shutil.copy(report["path"], tmp_path / "report.html")
    probe.write_text("""<!DOCTYPE html><html><body><iframe id="f" src="report.html"></iframe>\
<pre id="out">pending</pre>
<script>document.getElementById('f').addEventListener('load', function () {
  var d = this.contentDocument, imgs = Array.from(d.images);
  document.getElementById('out').textContent = 'RESULT ' + \
JSON.stringify({title: d.title, images: imgs.length,
    loaded: imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length,
    scripts: d.querySelectorAll('script').length});
});</script></body></html>""")
    out = _chromium(
        "--allow-file-access-from-files",
        "--virtual-time-budget=10000",
        "--dump-dom",
        probe.as_uri(),
        tmp=tmp_path,
    ).stdout
    result = json.loads(re.search(r"RESULT (\{.*?\})</pre>", out).group(1))
    n_img = sum(1 for t, _ in _parse(report["html"]).tags if t == "img")
    assert result == {"title": result["title"], "images": n_img, "loaded": n_img, "scripts": 0}
    assert result["title"].startswith("curate dataset report:")
    # 3. A screenshot shows the plots (their bar colour) and photos (many distinct colours), not a blank page.
    shot = tmp_path / "shot.png"
    _chromium("--window-size=1280,3000", f"--screenshot={shot}", report["path"].as_uri(), tmp=tmp_path)
    from PIL import Image

    pixels = Image.open(shot).convert("RGB")
    colours = pixels.getcolors(maxcolors=1 << 24)
    assert len(colours) > 2000
    assert {c: n for n, c in colours}.get((0x3B, 0x6E, 0xA8), 0) > 5000  # report_plots.COLOUR bars


def test_partial_dataset_and_an_undecodable_image(ds, tmp_path):
    root = tmp_path / "partial"
    shutil.copytree(Path(ds["root"]) / "manifest", root / "manifest")
    shutil.copytree(Path(ds["root"]) / "shards", root / "shards")
    shard = root / "shards/00000.parquet"
    table = pq.read_table(shard)
    images = table.column("image").to_pylist()
    images[0] = b"\xff\xd8 not really a jpeg"
    table = table.set_column(table.schema.get_field_index("image"), "image", [images])
    pq.write_table(table, shard)
    out = tmp_path / "r.html"
    result = build_report(str(root), str(out))
    doc = out.read_text()
    assert result["recipe"] is None and "<h2>Downloaded samples (no recipe applied yet)" in doc
    assert 'class="noimg">no image</div><div class="cap">a photo of a colourful thing number 0<' in doc
    assert "Dropped samples" not in doc and "Duplicate clusters" not in doc
    _assert_inert(_parse(doc))


def test_cli(ds, tmp_path, capsys):
    out = tmp_path / "card.html"
    assert main(["report", ds["root"], "-o", str(out), "--recipe", "datacomp_basic", "--kept", "4"]) == 0
    assert "recipe datacomp_basic" in capsys.readouterr().out
    assert out.read_text().count('<div class="card">') >= 4
    assert main(["report", ds["root"], "-o", str(out), "--recipe", "nope"]) == 2
    assert "recipe 'nope' has no decisions" in capsys.readouterr().err
