"""Where the downloader may connect, how long a row may take, and which X-Robots-Tag values refuse an image:
over real sockets on 127.0.0.1, with every connect the process makes recorded."""

from __future__ import annotations

import json
import time
from pathlib import Path
from urllib.parse import quote, urlsplit

import pyarrow.parquet as pq
import pytest
from safety_server import SafetyServer, recorded_connects
from test_download import read_shards, write_manifest

from curate.download import DownloadConfig, download
from curate.download.fetch import Fetcher, FetchError
from curate.download.safety import PRIVATE_NETWORKS, address_problem

LOCAL = ("127.0.0.1/32",)
FAST = {"connect_timeout": 2.0, "read_timeout": 2.0, "total_timeout": 3.0, "backoff_base": 0.05, "threads": 4}


@pytest.mark.parametrize(
    ("address", "allowed", "problem"),
    [
        ("93.184.216.34", (), None),
        ("127.0.0.1", (), "loopback"),
        ("127.0.0.1", LOCAL, None),
        ("127.0.0.2", LOCAL, "loopback"),  # the allowance is the address named, not loopback as a whole
        ("10.1.2.3", ("10.0.0.0/8",), None),
        ("169.254.169.254", (), "cloud-metadata"),
        ("169.254.169.254", ("169.254.0.0/16",), "cloud-metadata"),  # a network does not reach metadata...
        ("169.254.169.254", ("169.254.169.254/32",), None),  # ...naming it one by one does
        ("169.254.10.5", ("169.254.0.0/16",), "link-local"),
        ("169.254.10.5", ("169.254.10.5/32",), None),
        ("fe80::1%eth0", ("fe80::/10",), "link-local"),
        ("100.100.100.200", ("100.64.0.0/10",), "cloud-metadata"),
        ("fd00:ec2::254", ("fc00::/7",), "cloud-metadata"),
        ("fd00:ec2::254", ("fd00:ec2::254/128",), None),
        ("fd12::1", ("fc00::/7",), None),
        ("fec0::1", (), "site-local"),
        ("::ffff:169.254.169.254", (), "cloud-metadata (169.254.169.254 inside ::ffff:a9fe:a9fe)"),
        ("2002:a9fe:a9fe::1", (), "cloud-metadata (169.254.169.254 inside 2002:a9fe:a9fe::1)"),  # 6to4
        ("2002:7f00:1::", (), "loopback (127.0.0.1 inside 2002:7f00:1::)"),
        ("2002:5db8:d822::1", (), None),  # 6to4 of a public address
        ("64:ff9b::a9fe:a9fe", (), "cloud-metadata (169.254.169.254 inside 64:ff9b::a9fe:a9fe)"),  # NAT64
        ("64:ff9b::a00:1", (), "private (10.0.0.1 inside 64:ff9b::a00:1)"),
        ("64:ff9b::5db8:d822", (), None),
        (
            "64:ff9b:1:abcd::a9fe:a9fe",
            (),
            "cloud-metadata (169.254.169.254 inside 64:ff9b:1:abcd::a9fe:a9fe)",
        ),
        (
            "64:ff9b:1:a9fe:a9:fe00::",
            (),
            "cloud-metadata (169.254.169.254 inside 64:ff9b:1:a9fe:a9:fe00::)",
        ),  # /48
        ("64:ff9b:1:abcd::5db8:d822", (), None),
        ("not an address", (), "unparseable address"),
    ],
)
def test_one_rule_decides_every_address(address, allowed, problem):
    assert address_problem(address, allowed) == problem


def test_old_allow_private_network_never_reaches_link_local_or_metadata(caplog):
    cfg = DownloadConfig(allow_private_network=True)
    assert "allow_private_network is deprecated" in caplog.text
    assert set(PRIVATE_NETWORKS) <= set(cfg.allow_networks)
    assert address_problem("10.0.0.7", cfg.allow_networks) is None
    assert address_problem("169.254.169.254", cfg.allow_networks) == "cloud-metadata"
    assert address_problem("169.254.1.1", cfg.allow_networks) == "link-local"
    assert address_problem("fd00:ec2::254", cfg.allow_networks) == "cloud-metadata"


FORBIDDEN = [
    "http://169.254.169.254/latest/meta-data/",
    "http://[::ffff:169.254.169.254]/",
    "http://[2002:a9fe:a9fe::1]/",
    "http://[64:ff9b::a9fe:a9fe]/",
    "http://[fd00:ec2::254]/",
    "http://10.0.0.1/admin",
    "http://127.0.0.2/",
]


def test_no_hop_connects_outside_the_allowed_address(tmp_path):
    """Redirects to metadata, private and loopback addresses in every spelling: no connection is attempted
    (robots.txt included), and each row records private_address."""
    with SafetyServer() as srv:
        urls = [srv.url(f"/to?url={quote(target)}") for target in FORBIDDEN] + [srv.url("/img/1.jpg")]
        manifest = write_manifest(tmp_path / "m", urls)
        with recorded_connects() as connects:
            download(
                str(manifest), str(tmp_path / "ds"), DownloadConfig(allow_networks=LOCAL, **FAST), workers=1
            )
        rows = {r["url"]: r for r in read_shards(tmp_path / "ds")}
        assert rows[urls[-1]]["status"] == "success"
        for url in urls[:-1]:
            assert rows[url]["error_class"] == "private_address", rows[url]["error_message"]
        assert connects and {c[:2] for c in connects} == {("127.0.0.1", srv.port)}


@pytest.mark.slow
def test_curate_demo_connects_only_to_the_synthetic_web(tmp_path):
    """`curate demo` in this process (workers=1, training left out: it opens no socket), every connect
    recorded: all of them go to the synthetic web's address and port, although the web serves a redirect
    to the cloud-metadata address."""
    from curate.demo import run_demo

    with recorded_connects() as connects:
        summary = run_demo(str(tmp_path / "demo"), n_images=24, train=False, workers=1)
    fault_rows = Path(summary["outputs"]["warc"]).with_name("fault-urls.jsonl").read_text().splitlines()
    web = urlsplit(json.loads(fault_rows[0])["url"])
    assert connects and {c[:2] for c in connects} == {(web.hostname, web.port)}
    assert summary["headline"]["failures_by_class"]["private_address"] == 1


def test_trickled_headers_time_out_within_the_total_budget(tmp_path):
    """A header byte every 0.2 s never trips a 2 s read timeout; the 3 s total budget must end the row."""
    with SafetyServer() as srv:
        manifest = write_manifest(tmp_path / "m", [srv.url("/trickle")])
        start = time.monotonic()
        download(str(manifest), str(tmp_path / "ds"), DownloadConfig(allow_networks=LOCAL, **FAST), workers=1)
        elapsed = time.monotonic() - start
        (row,) = read_shards(tmp_path / "ds")
    assert (row["status"], row["error_class"]) == ("failed", "timeout"), row["error_message"]
    assert "total time limit" in row["error_message"]
    assert elapsed < 3 * FAST["total_timeout"]  # a correctness bound (the server trickles for 30 s)


def test_redirect_hops_share_one_total_budget():
    """Six hops of 0.7 s each: every hop is quick on its own, the chain exceeds the 2 s total."""
    with SafetyServer() as srv:
        fetcher = Fetcher(
            DownloadConfig(allow_networks=LOCAL, max_redirects=10, **{**FAST, "total_timeout": 2.0})
        )
        start = time.monotonic()
        with pytest.raises(FetchError) as caught:
            fetcher.fetch(srv.url("/hop/6?delay=0.7"))
        elapsed = time.monotonic() - start
        fetcher.close()
    assert caught.value.error_class == "timeout", caught.value
    assert elapsed < 6.0


@pytest.mark.parametrize(
    ("tag", "refused"),
    [
        ("noai", True),
        ("noimageai", True),
        ("noindex", True),
        ("noimageindex", True),
        ("NoIndex, nofollow", True),
        ("curate: noimageindex", True),
        ("otherbot: noindex", False),
        ("nofollow", False),
        ("all", False),
    ],
)
def test_x_robots_tag_refusals_by_default(tag, refused):
    with SafetyServer() as srv:
        fetcher = Fetcher(DownloadConfig(allow_networks=LOCAL, **FAST))
        url = srv.url(f"/xrt/3.jpg?tag={quote(tag)}")
        try:
            if refused:
                with pytest.raises(FetchError) as caught:
                    fetcher.fetch(url)
                assert caught.value.error_class == "x_robots_tag"
            else:
                assert fetcher.fetch(url).body[:2] == b"\xff\xd8"
        finally:
            fetcher.close()


def test_x_robots_tag_set_is_configurable(tmp_path):
    with SafetyServer() as srv:
        urls = [srv.url("/xrt/1.jpg?tag=noindex"), srv.url("/xrt/2.jpg?tag=noai")]
        manifest = write_manifest(tmp_path / "m", urls)
        cfg = DownloadConfig(allow_networks=LOCAL, x_robots_tag_block=["noai"], **FAST)
        download(str(manifest), str(tmp_path / "ds"), cfg, workers=1)
        rows = {r["url"]: r for r in read_shards(tmp_path / "ds")}
    assert rows[urls[0]]["status"] == "success"
    assert rows[urls[1]]["error_class"] == "x_robots_tag"
    table = pq.read_table(next((tmp_path / "ds" / "shards").glob("[0-9]*.parquet")), columns=["image"])
    assert table.column("image").null_count == 1  # the refused body is not kept
