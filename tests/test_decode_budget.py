"""The per-process pixel budget bounds the decoded pixels in flight, in the budget itself and through the
real download path (loopback server, many fetch threads)."""

from __future__ import annotations

import io
import json
import random
import subprocess
import sys
import textwrap
import threading
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from download_server import FaultServer
from PIL import Image

from curate.download import DownloadConfig, download
from curate.download.budget import PixelBudget, pixel_budget
from curate.download.process import process_image
from curate.schema import MANIFEST_SCHEMA, make_uid


class FileServer(FaultServer):
    """FaultServer that also serves fixed bodies at given paths."""

    def __init__(self, files: dict[str, tuple[bytes, str]]) -> None:
        super().__init__()
        self.files = files

    def route(self, h) -> None:
        path = h.path.partition("?")[0]
        if path in self.files:
            body, ctype = self.files[path]
            return self.send(h, 200, body, ctype)
        return super().route(h)


def rgba_png(side: int, seed: int) -> bytes:
    img = Image.new("RGBA", (side, side), (seed % 256, 90, 200, 128))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def write_manifest(folder, urls: list[str]) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    rows = {
        "uid": [make_uid(u, "c") for u in urls],
        "url": urls,
        "caption": ["c"] * len(urls),
        "status": ["ok"] * len(urls),
    }
    pq.write_table(pa.table(rows, schema=MANIFEST_SCHEMA), folder / "part-00000.parquet")
    return str(folder)


def test_budget_never_holds_more_pixels_than_its_limit_and_big_images_run_alone():
    limit = 1000
    budget = PixelBudget(limit)
    holders: dict[int, int] = {}  # thread id -> pixels, kept by the test, not by the budget
    guard = threading.Lock()
    seen_total, seen_holders, violations = [0], [0], []

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(20):
            pixels = rng.choice([100, 250, 400, 1500])  # 1500: larger than the whole budget
            with budget.reserve(pixels):
                with guard:
                    holders[threading.get_ident()] = pixels
                    total = sum(holders.values())
                    seen_total[0] = max(seen_total[0], total)
                    seen_holders[0] = max(seen_holders[0], len(holders))
                    if total > limit and len(holders) > 1:
                        violations.append(dict(holders))
                time.sleep(rng.random() * 0.002)
                with guard:
                    del holders[threading.get_ident()]

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a reservation never got its turn"
    assert violations == []  # over the limit only ever as one image alone
    assert seen_holders[0] >= 2  # small images did share the budget
    assert seen_total[0] == budget.peak == 1500  # the lone big image is the peak
    assert budget.in_flight == 0


def test_a_big_waiter_is_not_starved_by_later_small_ones():
    budget = PixelBudget(1000)
    order: list[str] = []
    first = budget.reserve(600)
    first.__enter__()

    def take(name: str, pixels: int) -> None:
        with budget.reserve(pixels):
            order.append(name)

    big = threading.Thread(target=take, args=("big", 900))
    big.start()
    time.sleep(0.1)  # the big one is waiting in line now
    small = threading.Thread(target=take, args=("small", 100))  # would fit beside the first at once
    small.start()
    time.sleep(0.1)
    assert order == []  # the small one queues behind the big one instead of overtaking it
    first.__exit__(None, None, None)
    big.join(5)
    small.join(5)
    assert order == ["big", "small"]


def test_jpeg_reserves_its_dct_scaled_size_not_its_declared_size():
    cfg = DownloadConfig(decode_pixel_budget=7_777_001)  # a budget of its own
    buf = io.BytesIO()
    Image.new("RGB", (4000, 3000), (40, 90, 160)).save(buf, "JPEG")
    process_image(buf.getvalue(), cfg)
    assert pixel_budget(cfg.decode_pixel_budget).peak == 500 * 375  # decoded at 1/8 for a 256 px target


def test_download_threads_decode_within_the_budget(tmp_path):
    side = 1000  # 1,000,000 pixels each; the budget lets two decode at once, never three
    files = {f"/big/{i}.png": (rgba_png(side, i), "image/png") for i in range(12)}
    cfg = DownloadConfig(allow_networks=("127.0.0.1/32",), threads=8, decode_pixel_budget=2_500_000)
    with FileServer(files) as server:
        manifest = write_manifest(tmp_path / "m", [server.url(p) for p in files])
        download(manifest, str(tmp_path / "ds"), cfg, workers=1)
    shard = tmp_path / "ds" / "shards" / "00000.parquet"
    rows = pq.read_table(shard, columns=["status", "width"]).to_pylist()
    assert [r["status"] for r in rows] == ["success"] * 12 and {r["width"] for r in rows} == {256}
    budget = pixel_budget(2_500_000)
    assert side * side <= budget.peak <= 2_500_000 and budget.in_flight == 0


# Run in a fresh interpreter: the high-water mark of RSS (ru_maxrss) after one image alone, then after
# 12 images on 8 threads under a budget that admits one at a time.
RSS_SCRIPT = textwrap.dedent("""
    import io, json, resource, sys
    from concurrent.futures import ThreadPoolExecutor
    from PIL import Image
    from curate.download.config import DownloadConfig
    from curate.download.process import process_image

    def maxrss_mb():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    buf = io.BytesIO()
    Image.new("RGBA", (3000, 3000), (30, 140, 220, 160)).save(buf, "PNG")
    data = buf.getvalue()
    del buf
    cfg = DownloadConfig(decode_pixel_budget=10_000_000)  # one 9,000,000-pixel image at a time
    base = int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20
    process_image(data, cfg)
    one = maxrss_mb()
    with ThreadPoolExecutor(8) as pool:
        assert len(list(pool.map(lambda _: process_image(data, cfg), range(12)))) == 12
    print(json.dumps({"base": base, "one": one, "many": maxrss_mb()}))
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc; the malloc setting is glibc's")
def test_peak_memory_of_many_threads_stays_that_of_one_image():
    out = subprocess.run([sys.executable, "-c", RSS_SCRIPT], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    mb = json.loads(out.stdout)
    image = mb["one"] - mb["base"]  # what decoding one 3000x3000 RGBA image costs (about 110 MB)
    assert image > 50
    # Only the budget's one image in flight, and its memory returned after each: not 8 threads' worth.
    assert mb["many"] - mb["one"] < 0.25 * image, mb


# A budgeted process frees big buffers to the OS but keeps the heap top for the next image's small ones:
# 100 rounds of a 600 KB buffer (under the mmap threshold) fault its 147 pages in once, not every round.
HEAP_REUSE_SCRIPT = textwrap.dedent("""
    import resource
    from curate.download.budget import pixel_budget

    pixel_budget(10_000_000)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(100):
        buf = bytearray(600_000)
        del buf
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the malloc setting is glibc's")
def test_budgeted_process_reuses_its_heap_top_between_images():
    out = subprocess.run(
        [sys.executable, "-c", HEAP_REUSE_SCRIPT], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    # Trimmed after every round (glibc's frozen 128 KiB trim threshold) this was about 100 x 147 faults.
    assert int(out.stdout) < 100 * 147 // 4, out.stdout


def test_budget_is_validated():
    from curate.errors import CurateError

    with pytest.raises(CurateError, match="decode-pixel-budget"):
        DownloadConfig(decode_pixel_budget=-1)
