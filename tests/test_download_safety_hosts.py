"""One host rule for every part of curate (curate.urls): the host the downloader connects to is the host
opt-outs, takedowns and SQL's url_host match, whatever the spelling; every redirect hop is checked."""

from __future__ import annotations

import random
from urllib.parse import quote

import duckdb
import pyarrow as pa
import pytest
from safety_server import SafetyServer
from test_download import read_shards, write_manifest

from curate.download import DownloadConfig, download
from curate.download.optout import OptOut
from curate.takedown.requests import Takedown
from curate.takedown.stage import matching_uids_sql, takedown
from curate.urls import install_url_host, parse_target, url_host

LOCAL = ("127.0.0.1/32", "::1/128")
FAST = {"connect_timeout": 2.0, "read_timeout": 2.0, "total_timeout": 3.0, "threads": 4}

ADVERSARIAL = [
    "http://host:8080?a=@example.org/",
    "http://host:8080#@example.org/",
    "http://Victim.COM./x",
    "http://victim.com../x",
    "http://bücher.de/",
    "http://xn--bcher-kva.de/",
    "http://BÜCHER.de./",
    "http://a@b.com/",
    "http://a:pw@b.com:81/",
    "http://a@b@c.com/",
    "http://[::1]:80/",
    "http://[::1/",
    "http://[a]@b.com/",
    "HTTPS://A.COM",
    "ftp://a.com/x",
    "x://y",
    "//proto.relative/x",
    "javascript:alert(1)",
    "http:\t//a.com/",
    " http://a.com/",
    "http://a.com /",
    "http://vic\ttim.com/",
    "http://vic\ntim.com/",
    "http://ｖｉｃｔｉｍ．com/",
    "http://victim。com/",
    "http://ａ＠x@b.com/",
    "http://a.com:99999/",
    "http://a.com:12345/",
    "http://a.com:/",
    "http://a.com:0080/",
    "http://a.com:8o/",
    "http://a.com:80:90/",
    "http://evil.com\\@victim.com/",
    "http://.../",
    "http://:80/",
    "http:///x",
    "http://a.com%2F@b.com/",
    "http://%76ictim.com/",
    "http://a_b-c.Example.org/p?q#f",
    "http://1.2.3.4/",
    "http://0x7f.1/",
    "http://a.com\x00/",
    "\x00http://a.com/",
    "http://a.com/\u00e9",
    "http://xn--/",
    "http://a..b/",
    "http://" + "a" * 64 + ".com/",
    "http://" + "é" * 64 + ".com/",
    "",
    None,
]


def _sql_hosts(urls: list[str | None]) -> list[str | None]:
    con = duckdb.connect()
    install_url_host(con)
    con.register("t", pa.table({"i": list(range(len(urls))), "u": pa.array(urls, pa.string())}))
    return [h for _, h in con.execute("SELECT i, url_host(u) FROM t ORDER BY i").fetchall()]


def test_sql_url_host_equals_the_python_rule_on_adversarial_and_random_urls():
    rng = random.Random(0)
    pieces = [
        "http",
        "https",
        "HTTP",
        "ftp",
        ":",
        "//",
        "/",
        "?",
        "#",
        "@",
        "[",
        "]",
        "\\",
        ".",
        "..",
        " ",
        "\t",
        "%",
        "a",
        "B",
        "victim",
        "com",
        "80",
        "99999",
        "::1",
        "é",
        "ß",
        "。",
        "＠",
        "xn--",
        "-",
        "_",
        "\x00",
    ]
    fuzz = ["".join(rng.choice(pieces) for _ in range(rng.randint(1, 14))) for _ in range(4000)]
    fuzz += [
        "http://" + "".join(rng.choice(pieces[4:]) for _ in range(rng.randint(1, 8))) for _ in range(4000)
    ]
    urls = ADVERSARIAL + fuzz
    expected = [url_host(u) for u in urls]
    assert _sql_hosts(urls) == expected
    assert sum(h is not None for h in expected) > 1000  # the fuzz reaches hosts, not only rejections


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("http://host:8080?a=@example.org/", "host"),  # the host the client connects to, not example.org
        ("http://Victim.COM./x", "victim.com"),
        ("http://user@victim.com/x", "victim.com"),
        ("http://a@b@victim.com/x", "victim.com"),
        ("http://bücher.de/", "xn--bcher-kva.de"),
        ("http://XN--BCHER-KVA.de/", "xn--bcher-kva.de"),
        (
            "http://ｖｉｃｔｉｍ．com/",
            "victim.com",
        ),  # full-width letters and dot, as IDNA (and DNS) read them
        ("http://victim。com/", "victim.com"),
        ("http://[::1]:80/", "::1"),
        ("http://a.com:99999/", None),
        ("mailto:someone@victim.com", None),
    ],
)
def test_host_rule(url, host):
    assert url_host(url) == host


def test_the_client_connects_to_the_host_the_rule_names():
    target = parse_target("http://user@Bücher.DE.:8080/p?q=1#f")
    assert (target.scheme, target.host, target.port, target.path) == (
        "http",
        "xn--bcher-kva.de",
        8080,
        "/p?q=1",
    )


@pytest.mark.parametrize("spelling", ["victim.com", "VICTIM.com.", "*.victim.com", ".victim.com"])
@pytest.mark.parametrize(
    "url", ["http://Victim.COM./a.jpg", "http://x@cdn.victim.com/a.jpg", "http://CDN.VICTIM.COM.:8080/a.jpg"]
)
def test_opt_out_domains_match_every_spelling(spelling, url):
    out = OptOut()
    out.add_domain(spelling)
    assert out.reason("u", url) == "domain victim.com opted out"


def test_opt_out_idna_and_url_prefixes():
    out = OptOut()
    out.add_domain("bücher.de")
    out.add_prefix("https://Example.org./private/")
    assert out.reason("u", "http://xn--bcher-kva.de/a.jpg")
    assert out.reason("u", "http://BÜCHER.de./a.jpg")
    assert out.reason("u", "http://u@example.ORG:8443/private/a.jpg")
    assert out.reason("u", "http://example.org/public/a.jpg") is None
    assert out.reason("u", "http://example.org:80?a=@victim.com/") is None


def test_redirect_to_an_opted_out_host_is_never_requested(tmp_path):
    """127.0.0.1 redirects to localhost, which the opt-out list names (trailing dot, capitals)."""
    with SafetyServer() as srv:
        hop = f"http://localhost:{srv.port}/img/5.jpg"
        url = srv.url(f"/to?url={quote(hop)}")
        optout = tmp_path / "optout.txt"
        optout.write_text("LOCALHOST.\n")
        manifest = write_manifest(tmp_path / "m", [url])
        cfg = DownloadConfig(allow_networks=LOCAL, respect_robots_txt=False, **FAST)
        download(str(manifest), str(tmp_path / "ds"), cfg, workers=1, optout_files=(str(optout),))
        (row,) = read_shards(tmp_path / "ds")
        assert (row["status"], row["error_class"]) == ("skipped", "opted_out"), row["error_message"]
        assert "redirect" in row["error_message"] and row["final_url"] == hop
        assert "/img/5.jpg" not in srv.log


def test_redirect_hop_obeys_its_own_hosts_robots_txt(tmp_path):
    """robots.txt allows everything on 127.0.0.1 and nothing on localhost: the hop to localhost is refused."""
    with SafetyServer() as srv:
        url = srv.url(f"/to?url={quote(f'http://localhost:{srv.port}/img/6.jpg')}")
        manifest = write_manifest(tmp_path / "m", [url, srv.url("/img/7.jpg")])
        download(str(manifest), str(tmp_path / "ds"), DownloadConfig(allow_networks=LOCAL, **FAST), workers=1)
        rows = {r["url"]: r for r in read_shards(tmp_path / "ds")}
        assert rows[url]["error_class"] == "robots_disallowed", rows[url]["error_message"]
        assert rows[srv.url("/img/7.jpg")]["status"] == "success"
        assert "/img/6.jpg" not in srv.log and srv.log["/robots.txt"]


def test_takedown_by_domain_or_url_matches_the_final_url(tmp_path):
    """Rows downloaded from 127.0.0.1 through a redirect to localhost: a takedown of `Localhost.` (or of the
    final URL) purges them although their manifest URL names another host."""
    with SafetyServer() as srv:
        finals = [f"http://localhost:{srv.port}/img/{n}.jpg" for n in (8, 9)]
        urls = [srv.url(f"/to?url={quote(f)}") for f in finals] + [srv.url("/img/10.jpg")]
        manifest = write_manifest(tmp_path / "m", urls)
        cfg = DownloadConfig(allow_networks=LOCAL, respect_robots_txt=False, **FAST)
        download(str(manifest), str(tmp_path / "ds"), cfg, workers=1)
    assert {r["status"] for r in read_shards(tmp_path / "ds")} == {"success"}
    assert takedown(str(tmp_path / "ds"), urls=[finals[0]])["samples_matched"] == 1
    rows = {r["url"]: r for r in read_shards(tmp_path / "ds")}
    assert [rows[u]["error_class"] for u in urls] == ["takedown", None, None]
    assert takedown(str(tmp_path / "ds"), domains=["Localhost."])["samples_matched"] == 2
    rows = {r["url"]: r for r in read_shards(tmp_path / "ds")}
    assert [rows[u]["error_class"] for u in urls] == ["takedown", "takedown", None]


def test_takedown_sql_matches_url_final_url_and_the_host_the_client_used():
    con = duckdb.connect()
    install_url_host(con)
    con.register(
        "rows",
        pa.table(
            {
                "uid": ["a", "b", "c", "d"],
                "url": [
                    "http://host:8080?a=@example.org/",
                    "http://cdn.Example.ORG./x",
                    "http://a.com/1",
                    "http://a.com/2",
                ],
                "final_url": [None, None, "http://b.com/moved", None],
            }
        ),
    )
    con.register(
        "requests", pa.table({"kind": ["domain", "url"], "value": ["EXAMPLE.org.", "http://b.com/moved"]})
    )
    got = sorted(con.execute(f"SELECT uid, kind FROM ({matching_uids_sql('requests', 'rows')})").fetchall())
    assert got == [("b", "domain"), ("c", "url")]  # a is fetched from `host`, not from example.org


def test_manifest_takedown_uses_the_same_host_rule(tmp_path):
    rule = Takedown(uids=pa.array([], pa.string()), urls=pa.array([], pa.string()), domains=("example.org",))
    urls = pa.array(
        ["http://host:8080?a=@example.org/", "http://u@Example.ORG./x", "http://bücher.de/", None]
    )
    assert rule.matches(pa.array(["1", "2", "3", "4"]), urls).to_pylist() == [False, True, False, False]
