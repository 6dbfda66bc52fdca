"""curate download over real sockets: faults, safety, politeness, resume and retry."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from download_server import FaultServer

from curate.dataset import stats_files, stats_path
from curate.download import DownloadConfig, download
from curate.schema import ERROR_CLASSES, MANIFEST_SCHEMA, SHARD_SCHEMA, make_uid

LOOPBACK = ("127.0.0.1/32",)  # the test server's own address, nothing else
FAST = {
    "connect_timeout": 2.0,
    "read_timeout": 2.0,
    "total_timeout": 3.0,
    "backoff_base": 0.05,
    "max_backoff": 5.0,
    "threads": 8,
}


def write_manifest(folder: Path, urls: list[str], parts: int = 1, extra: dict | None = None) -> Path:
    """A manifest folder with `parts` parts (rows dealt round-robin)."""
    folder.mkdir(parents=True, exist_ok=True)
    for p in range(parts):
        sel = urls[p::parts]
        rows = {
            "uid": [make_uid(u, f"caption {u}") for u in sel],
            "url": sel,
            "caption": [f"caption {u}" for u in sel],
            "status": ["ok"] * len(sel),
        }
        fields = list(MANIFEST_SCHEMA)
        for name, values in (extra or {}).items():
            rows[name] = values[p::parts]
            fields.append(pa.field(name, pa.int64()))
        pq.write_table(pa.table(rows, schema=pa.schema(fields)), folder / f"part-{p:05d}.parquet")
    return folder


def read_shards(dataset: Path) -> list[dict]:
    rows = []
    for path in sorted((dataset / "shards").glob("[0-9]*.parquet")):
        rows += pq.read_table(path).drop(["image"]).to_pylist()
    return rows


def by_url(rows: list[dict]) -> dict[str, dict]:
    return {r["url"]: r for r in rows}


@pytest.fixture()
def server():
    with FaultServer() as srv:
        yield srv


def test_every_fault_class_is_recorded_and_no_row_is_lost(tmp_path, server):
    cases = {
        "/img/1.jpg": ("success", None),
        "/redirect/2": ("success", None),
        "/status/404": ("failed", "http_4xx"),
        "/status/500": ("failed", "http_5xx"),
        "/unavailable": ("failed", "http_5xx"),
        "/stall": ("failed", "timeout"),
        "/slow": ("failed", "timeout"),
        "/truncated": ("failed", "protocol_error"),
        "/loop": ("failed", "too_many_redirects"),
        "/html": ("failed", "not_an_image"),
        "/corrupt": ("failed", "decode_error"),
        "/huge": ("failed", "too_large"),
        "/huge-chunked": ("failed", "too_large"),
        "/bomb": ("failed", "decompression_bomb"),
        "/noai/3.jpg": ("failed", "x_robots_tag"),
        "/private/4.jpg": ("failed", "robots_disallowed"),
    }
    urls = [server.url(p) for p in cases] + ["ftp://example.org/x.jpg"]
    manifest = write_manifest(tmp_path / "m", urls, parts=2)
    cfg = DownloadConfig(
        allow_networks=LOOPBACK,
        max_bytes=2 * 1024 * 1024,
        host_failure_limit=0,
        max_connections_per_host=8,
        **FAST,
    )
    summary = download(str(manifest), str(tmp_path / "ds"), cfg, workers=1)
    rows = read_shards(tmp_path / "ds")
    assert len(rows) == len(urls) and len({r["uid"] for r in rows}) == len(urls)
    got = by_url(rows)
    for path, (status, cls) in cases.items():
        row = got[server.url(path)]
        assert (row["status"], row["error_class"]) == (status, cls), (path, row["error_message"])
        if cls:
            assert row["error_message"]
    assert got["ftp://example.org/x.jpg"]["error_class"] == "invalid_url"
    assert "total time limit" in got[server.url("/slow")]["error_message"]  # bytes kept coming, too slowly
    assert "stalled" in got[server.url("/stall")]["error_message"]
    assert got[server.url("/redirect/2")]["final_url"] == server.url("/redirect-target/2")
    assert all(r["error_class"] in ERROR_CLASSES for r in rows if r["error_class"])
    assert summary.stats["dataset"]["rows"] == len(urls)
    assert len(server.log["/robots.txt"]) == 1  # fetched once for the host, then cached
    # the schema is the documented one
    schema = pq.read_schema(tmp_path / "ds" / "shards" / "00000.parquet")
    assert schema.names[: len(SHARD_SCHEMA)] == SHARD_SCHEMA.names


def test_honest_user_agent_is_sent(tmp_path, server):
    manifest = write_manifest(tmp_path / "m", [server.url("/img/1.jpg")])
    cfg = DownloadConfig(
        allow_networks=LOOPBACK, user_agent_token="mybot", contact_url="https://example.org/bot", **FAST
    )
    download(str(manifest), str(tmp_path / "ds"), cfg, workers=1)
    agents = {h.get("User-Agent") for h in server.headers_seen}
    assert any(a and a.startswith("mybot/") and "+https://example.org/bot" in a for a in agents), agents


def test_private_addresses_are_refused_including_redirects_and_hostnames(tmp_path):
    # The server lives on 127.0.0.2, which this test allows explicitly; 127.0.0.1 and localhost stay refused.
    with FaultServer(host="127.0.0.2") as srv:
        target = f"http://127.0.0.1:{srv.port}/img/1.jpg"
        urls = [
            srv.url("/img/1.jpg"),  # allowed network
            srv.url(f"/redirect-to?url={target}"),  # redirect hop to loopback
            f"http://localhost:{srv.port}/img/1.jpg",  # hostname resolving to loopback
            f"http://127.0.0.1:{srv.port}/img/1.jpg",  # literal loopback
            f"http://169.254.169.254:{srv.port}/latest/meta-data",  # link-local (cloud metadata)
        ]
        manifest = write_manifest(tmp_path / "m", urls)
        cfg = DownloadConfig(allow_networks=("127.0.0.2/32",), **FAST)
        download(str(manifest), str(tmp_path / "ds"), cfg, workers=1)
        got = by_url(read_shards(tmp_path / "ds"))
        assert got[urls[0]]["status"] == "success"
        for url in urls[1:]:
            assert got[url]["error_class"] == "private_address", (url, got[url]["error_message"])
        assert "loopback" in got[urls[2]]["error_message"]
        assert "link-local" in got[urls[4]]["error_message"]
        # the refused redirect target was never requested
        assert len(srv.log["/img/1.jpg"]) == 1


def test_size_cap_drops_the_connection_mid_body(tmp_path, server):
    manifest = write_manifest(tmp_path / "m", [server.url("/huge-chunked"), server.url("/img/5.jpg")])
    cfg = DownloadConfig(allow_networks=LOOPBACK, max_bytes=256 * 1024, **FAST)
    start = time.monotonic()
    download(str(manifest), str(tmp_path / "ds"), cfg, workers=1)
    got = by_url(read_shards(tmp_path / "ds"))
    assert got[server.url("/huge-chunked")]["error_class"] == "too_large"
    assert "connection dropped" in got[server.url("/huge-chunked")]["error_message"]
    assert got[server.url("/img/5.jpg")]["status"] == "success"
    assert time.monotonic() - start < 10


def test_per_host_connection_cap_measured_on_the_server(tmp_path, server):
    urls = [server.url(f"/img/{i}.jpg?delay=0.03") for i in range(40)]
    manifest = write_manifest(tmp_path / "m", urls)
    cfg = DownloadConfig(allow_networks=LOOPBACK, max_connections_per_host=2, **{**FAST, "threads": 16})
    download(str(manifest), str(tmp_path / "ds"), cfg, workers=1)
    assert server.max_concurrent <= 2
    assert all(r["status"] == "success" for r in read_shards(tmp_path / "ds"))
    # the measurement can see more than 2: a higher cap really opens more connections
    server.max_concurrent = 0
    urls2 = [server.url(f"/img/{i}.jpg?delay=0.03") for i in range(40, 80)]
    cfg6 = DownloadConfig(allow_networks=LOOPBACK, max_connections_per_host=6, **{**FAST, "threads": 16})
    download(str(write_manifest(tmp_path / "m2", urls2)), str(tmp_path / "ds2"), cfg6, workers=1)
    assert 2 < server.max_concurrent <= 6


def test_retry_after_is_honoured(tmp_path, server):
    manifest = write_manifest(tmp_path / "m", [server.url("/retry-after/1")])
    cfg = DownloadConfig(allow_networks=LOOPBACK, **FAST)
    download(str(manifest), str(tmp_path / "ds"), cfg, workers=1)
    times = server.log["/retry-after/1"]
    assert len(times) == 2
    assert times[1] - times[0] >= 0.95  # Retry-After: 1
    assert read_shards(tmp_path / "ds")[0]["status"] == "success"


def test_retry_after_longer_than_max_backoff_is_not_waited_for(tmp_path, server):
    manifest = write_manifest(tmp_path / "m", [server.url("/retry-after/5")])
    cfg = DownloadConfig(allow_networks=LOOPBACK, **{**FAST, "max_backoff": 0.5})
    download(str(manifest), str(tmp_path / "ds"), cfg, workers=1)
    row = read_shards(tmp_path / "ds")[0]
    assert row["error_class"] == "http_429" and "max-backoff" in row["error_message"]
    assert len(server.log["/retry-after/5"]) == 1


def test_failing_host_is_cut_off(tmp_path):
    import socket

    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    urls = [f"http://127.0.0.1:{port}/{i}.jpg" for i in range(12)]
    manifest = write_manifest(tmp_path / "m", urls)
    cfg = DownloadConfig(
        allow_networks=LOOPBACK, host_failure_limit=3, respect_robots_txt=False, **{**FAST, "threads": 1}
    )
    download(str(manifest), str(tmp_path / "ds"), cfg, workers=1)
    classes = [r["error_class"] for r in read_shards(tmp_path / "ds")]
    assert classes.count("connect") == 3
    assert classes.count("host_unreachable") == 9


def test_takedown_and_opt_out_skip_rows_before_any_request(tmp_path, server):
    urls = [server.url(f"/img/{i}.jpg") for i in range(6)]
    manifest = write_manifest(tmp_path / "m", urls)
    ds = tmp_path / "ds"
    ds.mkdir()
    take = pa.table({"kind": ["uid", "url"], "value": [make_uid(urls[0], f"caption {urls[0]}"), urls[1]]})
    pq.write_table(take, ds / "takedown.parquet")
    optout = tmp_path / "optout.txt"
    optout.write_text(f"# opted out\n{server.base_url}/img/2.jpg\nexample.org\n")
    cfg = DownloadConfig(allow_networks=LOOPBACK, **FAST)
    download(str(manifest), str(ds), cfg, workers=1, optout_files=(str(optout),))
    got = by_url(read_shards(ds))
    for url in urls[:3]:
        assert (got[url]["status"], got[url]["error_class"]) == ("skipped", "opted_out")
    assert all(got[u]["status"] == "success" for u in urls[3:])
    requested = {p for p, t in server.log.items() if t}
    assert not {"/img/0.jpg", "/img/1.jpg", "/img/2.jpg"} & requested


def test_preserved_manifest_columns_and_part_to_shard_keys(tmp_path, server):
    urls = [server.url(f"/img/{i}.jpg") for i in range(9)]
    manifest = write_manifest(tmp_path / "m", urls, parts=3, extra={"similarity": list(range(9))})
    download(str(manifest), str(tmp_path / "ds"), DownloadConfig(allow_networks=LOOPBACK, **FAST), workers=2)
    shards = sorted(p.name for p in (tmp_path / "ds" / "shards").glob("*.parquet"))
    assert shards == ["00000.parquet", "00001.parquet", "00002.parquet"]
    part1 = pq.read_table(manifest / "part-00001.parquet")
    shard1 = pq.read_table(tmp_path / "ds" / "shards" / "00001.parquet")
    assert sorted(shard1.column("uid").to_pylist()) == sorted(part1.column("uid").to_pylist())
    sim = {r["url"]: r["similarity"] for r in shard1.to_pylist()}
    assert sim == {u: i for i, u in enumerate(urls) if i % 3 == 1}
    assert os.path.exists(stats_path(str(tmp_path / "ds" / "shards"), "00001"))


def test_retry_failed_fixes_rows_after_faults_are_switched_off(tmp_path, server):
    urls = [server.url(f"/img/{i}.jpg") for i in range(6)] + [server.url(f"/flaky/{i}.jpg") for i in range(4)]
    urls.append(server.url("/status/404"))
    manifest = write_manifest(tmp_path / "m", urls, parts=2)
    ds = tmp_path / "ds"
    cfg = DownloadConfig(allow_networks=LOOPBACK, **{**FAST, "request_retries": 0})
    download(str(manifest), str(ds), cfg, workers=1)
    before = by_url(read_shards(ds))
    assert sum(r["error_class"] == "http_5xx" for r in before.values()) == 4
    server.faults = False
    server.log.clear()
    summary = download(str(manifest), str(ds), cfg, workers=1, retry_failed=True, error_classes=["http_5xx"])
    after = by_url(read_shards(ds))
    assert len(after) == len(urls)
    assert all(after[server.url(f"/flaky/{i}.jpg")]["status"] == "success" for i in range(4))
    assert after[server.url("/status/404")]["error_class"] == "http_4xx"  # not in the retried classes
    requested = {p for p, t in server.log.items() if t and p != "/robots.txt"}
    assert requested == {f"/flaky/{i}.jpg" for i in range(4)}  # only the failed rows were fetched again
    assert summary.stats["retried_rows"] == 4
    assert summary.stats["dataset"]["status"]["success"] == 10
    assert summary.stats["dataset"]["error_class"] == {"http_4xx": 1}  # the kept failed row is still counted
    assert not list((ds / "shards").glob(".retry-*"))


def test_unknown_error_class_for_retry_is_a_clear_error(tmp_path, server):
    from curate.errors import CurateError

    manifest = write_manifest(tmp_path / "m", [server.url("/img/1.jpg")])
    with pytest.raises(CurateError, match="unknown error class"):
        download(
            str(manifest),
            str(tmp_path / "ds"),
            DownloadConfig(allow_networks=LOOPBACK),
            workers=1,
            retry_failed=True,
            error_classes=["nope"],
        )


@pytest.mark.slow
def test_kill_mid_run_and_resume_gives_each_uid_once(tmp_path, server):
    urls = [server.url(f"/img/{i}.jpg?delay=0.02") for i in range(240)]
    manifest = write_manifest(tmp_path / "m", urls, parts=12)
    ds = tmp_path / "ds"
    cmd = [
        sys.executable,
        "-m",
        "curate",
        "-q",
        "download",
        str(manifest),
        "-o",
        str(ds),
        "--allow-networks",
        "127.0.0.1/32",
        "--workers",
        "1",
        "--threads",
        "4",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(stats_files(str(ds / "shards"))) < 2:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(stats_files(str(ds / "shards")))
    assert 2 <= done_before < 12, "the kill should land mid-run"
    assert (ds / ".lock").exists()  # the killed run's lock stays behind; its pid is gone, so it is stale
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    rows = read_shards(ds)
    uids = [r["uid"] for r in rows]
    assert len(uids) == len(set(uids)) == 240
    assert all(r["status"] == "success" for r in rows)
    assert not list((ds / "shards").glob(".tmp-*"))


@pytest.mark.slow
def test_real_url_list_without_internet_ends_as_dns_failures(tmp_path, caplog):
    from conftest import shared_path

    src = shared_path("data", "url-lists", "test_10000.parquet")
    ds = tmp_path / "ds"
    start = time.monotonic()
    with caplog.at_level("WARNING"):
        summary = download(str(src), str(ds), DownloadConfig(threads=64), workers=2)
    elapsed = time.monotonic() - start
    rows = read_shards(ds)
    assert len(rows) == 10_000
    failed = [r for r in rows if r["status"] != "success"]
    assert len(failed) == 10_000
    dns = sum(r["error_class"] == "dns" for r in rows)
    assert dns >= 9_900, {
        c: sum(r["error_class"] == c for r in rows) for c in {r["error_class"] for r in rows}
    }
    assert "failed DNS resolution: is this machine online?" in summary.stats["diagnosis"]
    assert elapsed < 120


def test_https_verifies_certificates_and_trusts_a_given_ca(tmp_path):
    import shutil

    if not shutil.which("openssl"):
        pytest.skip("the openssl command is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    with FaultServer(tls=(str(cert), str(key))) as srv:
        url = (
            f"https://localhost:{srv.port}/img/1.jpg"  # localhost also resolves to ::1, where nobody listens
        )
        manifest = write_manifest(tmp_path / "m", [url])
        download(
            str(manifest),
            str(tmp_path / "ds1"),
            DownloadConfig(allow_networks=LOOPBACK, **FAST),
            workers=1,
        )
        untrusted = read_shards(tmp_path / "ds1")[0]
        assert untrusted["error_class"] == "protocol_error"
        assert "certificate" in untrusted["error_message"].lower()
        assert not srv.log["/img/1.jpg"]
        cfg = DownloadConfig(allow_networks=LOOPBACK, ca_file=str(cert), **FAST)
        download(str(manifest), str(tmp_path / "ds2"), cfg, workers=1)
        trusted = read_shards(tmp_path / "ds2")[0]
        assert trusted["status"] == "success", trusted["error_message"]
        assert len(srv.log["/img/1.jpg"]) == 1


def test_raw_url_list_is_normalized_reused_on_rerun_and_a_different_manifest_is_refused(tmp_path, server):
    from curate.errors import CurateError

    urls = tmp_path / "urls.txt"
    urls.write_text("\n".join(server.url(f"/img/{i}.jpg") for i in range(5)) + "\nnot a url\n")
    ds = tmp_path / "ds"
    cfg = DownloadConfig(allow_networks=LOOPBACK, **FAST)
    first = download(str(urls), str(ds), cfg, workers=1)
    assert (ds / "manifest" / "part-00000.parquet").exists()
    assert first.done == 1 and first.stats["dataset"]["rows"] == 6
    rows = by_url(read_shards(ds))
    assert rows["not a url"]["error_class"] == "invalid_url"  # kept as a row, never dropped
    server.log.clear()
    again = download(str(urls), str(ds), cfg, workers=1)  # resume: the finished shard is not redone
    assert again.done == 0 and again.skipped == 1
    assert not [p for p, t in server.log.items() if t]
    other = write_manifest(tmp_path / "other", [server.url("/img/9.jpg")])
    with pytest.raises(CurateError, match="holds shards downloaded from"):
        download(str(other), str(ds), cfg, workers=1)
