"""How fast the synthetic web renders and serves, beside Python's own file server on the same files.

    python benchmarks/synthweb.py [--images 400] [--clients 4] [--rounds 3]

Rendering: CPU milliseconds per 500x375 JPEG (make_photo + encode). Serving: the web's images, rendered
ahead, fetched by N clients (http.client, one thread each, keep-alive where the server allows it); then
the same bytes written to a folder and served by `python -m http.server` (ThreadingHTTPServer +
SimpleHTTPRequestHandler, the anchor) and fetched by the same clients. Generated files go under
benchmarks/_work/.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from curate.synthweb import BACKGROUNDS, CLASSES, SyntheticWeb, make_photo
from curate.synthweb.photos import encode

WORK = Path(__file__).resolve().parent / "_work" / "synthweb"


def render_cost(n: int = 40) -> float:
    start = time.process_time()
    for i in range(n):
        encode(
            make_photo(CLASSES[i % len(CLASSES)], i, (500, 375), BACKGROUNDS[i % len(BACKGROUNDS)]),
            "jpeg",
            85,
        )
    return (time.process_time() - start) / n * 1000


def fetch_all(host: str, port: int, paths: list[str], clients: int, rounds: int) -> tuple[float, int]:
    """Requests per second and bytes fetched by `clients` keep-alive connections splitting `paths`."""
    total = [0]
    lock = threading.Lock()

    def client(part: list[str]) -> None:
        conn = http.client.HTTPConnection(host, port, timeout=30)
        got = 0
        for _ in range(rounds):
            for path in part:
                conn.request("GET", path)
                resp = conn.getresponse()
                body = resp.read()
                assert resp.status == 200, (path, resp.status)
                got += len(body)
        conn.close()
        with lock:
            total[0] += got

    threads = [threading.Thread(target=client, args=(paths[k::clients],)) for k in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(paths) * rounds / (time.perf_counter() - start), total[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"load before: {os.getloadavg()}")
    print(f"render: {render_cost():.1f} ms CPU per 500x375 JPEG")

    web = SyntheticWeb(n_images=args.images, seed=0, near_duplicates=0.2)
    start = time.perf_counter()
    web.prerender()
    print(
        f"prerender: {args.images} images in {time.perf_counter() - start:.1f} s ({os.cpu_count()} processes)"
    )
    with web:
        netloc = urlsplit(web.base_url).netloc.split(":")
        paths = [img.path for img in web.images]
        rps, nbytes = fetch_all(netloc[0], int(netloc[1]), paths, args.clients, args.rounds)
        print(f"synthweb: {rps:,.0f} requests/s, {nbytes / 1e6 / (len(paths) * args.rounds / rps):.0f} MB/s")
        # The anchor serves the same bytes as plain files (query-string URLs get a file name of their own).
        shutil.rmtree(WORK, ignore_errors=True)
        files = []
        for k, img in enumerate(web.images):
            rel = f"/f/{k:06d}.{img.fmt}"
            (WORK / "f").mkdir(parents=True, exist_ok=True)
            (WORK / rel.lstrip("/")).write_bytes(web.image_bytes(img))
            files.append(rel)
    port = free_port()
    # Its default HTTP/1.0 (a connection per request): in its HTTP/1.1 mode headers and body go out in
    # separate writes and keep-alive requests stall on delayed ACKs (about 25 requests/s per connection).
    proc = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(WORK)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        rps2, nbytes2 = fetch_all("127.0.0.1", port, files, args.clients, args.rounds)
        print(
            f"python -m http.server: {rps2:,.0f} requests/s, "
            f"{nbytes2 / 1e6 / (len(files) * args.rounds / rps2):.0f} MB/s"
        )
        print(f"ratio synthweb / http.server: {rps / rps2:.2f}")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
