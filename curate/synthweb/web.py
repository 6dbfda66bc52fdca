"""SyntheticWeb: a small, deterministic web on 127.0.0.1 with photos, pages, near-duplicates and faults.

Tests of every stage and `curate demo` run against it, so it behaves like the open web where that
matters (varied formats, sizes, URLs, captions in many languages, broken servers) while every answer
is known in advance (`images`, `pages`, `fault_urls`, near-duplicate `group`s).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import socket
import threading
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from curate.synthweb.captions import caption_for
from curate.synthweb.content import ImageSpec, build_specs, derive_seed, encode_spec
from curate.synthweb.faults import FAULT_PATHS
from curate.synthweb.pages import RenderedPage, page_path, render_index, render_page
from curate.synthweb.photos import BACKGROUNDS, CLASSES
from curate.synthweb.routes import normalize
from curate.synthweb.server import RequestRecord, SynthServer

if TYPE_CHECKING:
    from typing import Self

    from curate.synthweb.benchmark import BenchmarkSet

log = logging.getLogger(__name__)

DEFAULT_PRIVATE_TARGET = "http://169.254.169.254/latest/meta-data/iam/security-credentials/"


@dataclass(frozen=True)
class SynthImage:
    """One served image and its ground truth. `group` is shared by an original and its near-duplicates."""

    url: str
    caption: str
    lang: str | None  # ISO 639-1 code of the caption; None for junk captions ("IMG_1234.jpg")
    label: str  # one of CLASSES
    group: int
    fmt: str  # "jpeg" | "png" | "webp"
    width: int
    height: int
    path: str
    page_url: str  # the page that embeds it
    copy_of: str | None = None  # URL of the original for a near-duplicate copy
    transform: str | None = None  # how the copy was made, e.g. "reencode=jpeg@41 resize=0.73 crop=..."
    index: int = 0
    caption_kind: str = "describes"  # or "junk", or a curate.synthweb.noise.NOISE_KINDS kind
    burst: bool = False  # a copy in a near-duplicate burst


@dataclass(frozen=True)
class SynthPage:
    url: str
    html: bytes  # encoded in `encoding` (declared in <meta charset> and the Content-Type header)
    lang: str
    images: tuple[SynthImage, ...]  # the images embedded with non-empty alt text, in page order
    encoding: str = "utf-8"
    lazy: tuple[str, ...] = ()  # URLs of images named only by data-src (absent from a WAT's IMG@/src links)


class SyntheticWeb:
    """A loopback web server of generated photos, HTML pages and switchable faults.

    Construction only plans the content (fast); `start()` (or `with web:`) binds 127.0.0.1 and serves.
    Image bytes are rendered on first request and cached, so large webs start instantly.

    n_images: images on the pages (originals + near-duplicate copies); near_duplicates: the fraction that
    are copies; faults: start with faults on (`set_faults` switches them); images_per_page: page size;
    junk_captions: fraction of alt texts like "IMG_1234.jpg"; host/port: where to listen (port 0: any);
    slow_seconds: delay before the slow fault's headers; stall_seconds: how long the stall fault hangs;
    retry_after / rate_limit_count: the 429 fault's Retry-After and how many 429s precede the image;
    huge_bytes: size of the huge bodies; bomb_side: declared side of the decompression bomb;
    private_redirect_target: where the private-redirect fault points. Fault images have group < 0.
    caption_noise: share of alt texts that do not describe their image (another object's description,
    "click here", SEO keywords, file names; curate.synthweb.noise); bursts: share of images that are
    copies in near-duplicate bursts. Both default to 0: the web tests and the demo are built on.
    """

    def __init__(
        self,
        n_images: int = 200,
        seed: int = 0,
        near_duplicates: float = 0.2,
        faults: bool = True,
        *,
        images_per_page: int = 6,
        junk_captions: float = 0.06,
        host: str = "127.0.0.1",
        port: int = 0,
        slow_seconds: float = 2.0,
        stall_seconds: float = 30.0,
        retry_after: int = 1,
        rate_limit_count: int = 1,
        huge_bytes: int = 40 << 20,
        bomb_side: int = 30_000,
        private_redirect_target: str = DEFAULT_PRIVATE_TARGET,
        caption_noise: float = 0.0,
        bursts: float = 0.0,
    ) -> None:
        if images_per_page < 1:
            raise ValueError(f"images_per_page must be at least 1 (got {images_per_page})")
        self.n_images, self.seed, self.near_duplicates = n_images, seed, near_duplicates
        self.images_per_page = images_per_page
        self.host, self.port = host, port
        self.slow_seconds, self.stall_seconds = slow_seconds, stall_seconds
        self.retry_after, self.rate_limit_count = retry_after, rate_limit_count
        self.huge_bytes, self.bomb_side = huge_bytes, bomb_side
        self.private_redirect_target = private_redirect_target
        self.faults_enabled = faults
        self.specs, self.page_langs = build_specs(
            n_images, seed, near_duplicates, images_per_page, junk_captions, caption_noise, bursts
        )
        self._by_path = {normalize(spec.path): spec for spec in self.specs}
        self._fault_specs = self._plan_fault_images()
        self._by_index = {spec.index: spec for spec in [*self.specs, *self._fault_specs.values()]}
        self._bytes: dict[int, bytes] = {}
        self._lock = threading.Lock()
        self._rate_limited: dict[str, int] = {}
        self._server: SynthServer | None = None
        self._refuser: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._images: list[SynthImage] = []
        self._pages: list[SynthPage] = []
        self._page_html: dict[str, tuple[bytes, str]] = {}
        self._rendered: dict[str, RenderedPage] = {}

    def _plan_fault_images(self) -> dict[str, ImageSpec]:
        """The valid image behind each fault URL.

        Served when faults are off, or after a recoverable fault.
        """
        out = {}
        for k, name in enumerate(FAULT_PATHS):
            rng = np.random.default_rng(derive_seed(self.seed, 2, k))
            label, background = CLASSES[k % len(CLASSES)], BACKGROUNDS[k % len(BACKGROUNDS)]
            out[name] = ImageSpec(
                index=self.n_images + k,
                path=FAULT_PATHS[name],
                label=label,
                background=background,
                seed=derive_seed(self.seed, 3, k),
                fmt="jpeg",
                quality=85,
                width=480,
                height=360,
                caption=caption_for(label, background, "en", rng),
                lang="en",
                group=-1 - k,
            )
        return out

    # Lifecycle.

    def start(self) -> Self:
        if self._server is not None:
            return self
        self._server = SynthServer((self.host, self.port), self)
        self.port = self._server.server_address[1]
        # A port that is bound but never listens: connecting to it is refused, reliably, for the web's life.
        self._refuser = socket.socket()
        self._refuser.bind((self.host, 0))
        self._build_pages()
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"synthweb:{self.port}",
            daemon=True,
        )
        self._thread.start()
        log.info(
            "synthetic web serving %d images on %d pages at %s",
            len(self.specs),
            len(self._pages),
            self.base_url,
        )
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.close_all()
        self._server.server_close()
        self._thread.join(timeout=10)
        self._refuser.close()
        self._server, self._thread = None, None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _require_started(self) -> SynthServer:
        if self._server is None:
            raise RuntimeError("the synthetic web is not serving: call start() or use `with web:` first")
        return self._server

    # What it holds.

    @property
    def base_url(self) -> str:
        self._require_started()
        return f"http://{self.host}:{self.port}"

    @property
    def images(self) -> list[SynthImage]:
        self._require_started()
        return list(self._images)

    @property
    def pages(self) -> list[SynthPage]:
        self._require_started()
        return list(self._pages)

    @property
    def fault_urls(self) -> dict[str, str]:
        return {name: self.base_url + path for name, path in FAULT_PATHS.items()}

    @property
    def unreachable_urls(self) -> dict[str, str]:
        """URLs no server answers: a name that never resolves (.invalid, RFC 2606) and a refused port.

        They are not faults of this web (set_faults cannot fix them), so manifest_rows() leaves them out
        unless asked; EXPECTED_ERROR_CLASS names their error classes ("dns", "connect").
        """
        self._require_started()
        return {
            "dns": "http://images.synthweb.invalid/photo-0001.jpg",
            "connect_refused": f"http://{self.host}:{self._refuser.getsockname()[1]}/photo-0001.jpg",
        }

    def fault_image(self, name: str) -> SynthImage:
        """The valid image a fault URL serves when faults are off.

        Its caption and label are in manifest_rows.
        """
        spec = self._fault_specs[name]
        return self._public(spec, page_url="")

    def _public(self, spec: ImageSpec, page_url: str) -> SynthImage:
        copy_of = None if spec.source is None else self.base_url + self.specs[spec.source].path
        transform = None if spec.transform is None else spec.transform.describe(spec.fmt, spec.quality)
        return SynthImage(
            url=self.base_url + spec.path,
            caption=spec.caption,
            lang=spec.lang,
            label=spec.label,
            group=spec.group,
            fmt=spec.fmt,
            width=spec.width,
            height=spec.height,
            path=spec.path,
            page_url=page_url,
            copy_of=copy_of,
            transform=transform,
            index=spec.index,
            caption_kind=spec.caption_kind,
            burst=spec.burst,
        )

    def _build_pages(self) -> None:
        base, per = self.base_url, self.images_per_page
        n_pages = len(self.page_langs)
        self._images, self._pages, self._page_html, self._rendered = [], [], {}, {}
        for p, lang in enumerate(self.page_langs):
            specs = self.specs[p * per : (p + 1) * per]
            url = base + page_path(p)
            rendered = render_page(p, n_pages, lang, specs, base, self.seed)
            imgs = tuple(self._public(spec, url) for spec in specs)
            self._images.extend(imgs)
            self._pages.append(
                SynthPage(
                    url=url,
                    html=rendered.html,
                    lang=lang,
                    images=imgs,
                    encoding=rendered.encoding,
                    lazy=rendered.lazy,
                )
            )
            self._rendered[url] = rendered
            self._page_html[page_path(p)] = (rendered.html, rendered.encoding)
        self._page_html["/"] = (render_index([page_path(p) for p in range(n_pages)], base), "utf-8")

    # Serving (called from server threads).

    def spec_for_path(self, key: str) -> ImageSpec | None:
        return self._by_path.get(key)

    def caption_kind_of(self, url: str) -> str | None:
        """The ground truth of the alt text served with the image at `url` (any host and port: a rebuilt,
        unserved web answers for a crawl of the served one), e.g. `noise.DESCRIBES`; None where `url`
        names none of its images (a fault or a page)."""
        from curate.urls import parse_target  # (duckdb with it: only the ground-truth readers pay for that)

        target = parse_target(url)  # the request path the downloader sent for it
        spec = self.spec_for_path(normalize(target.path)) if target else None
        return spec.caption_kind if spec else None

    def page_html(self, key: str) -> tuple[bytes, str] | None:
        """(bytes, charset) of the page at a normalized path."""
        return self._page_html.get(key)

    def fault_spec(self, name: str) -> ImageSpec:
        return self._fault_specs[name]

    def image_bytes(self, image: ImageSpec | SynthImage) -> bytes:
        """The exact bytes served for an image (rendered once, then cached)."""
        spec = self._by_index[image.index]
        data = self._bytes.get(spec.index)
        if data is None:
            source = None if spec.source is None else self.specs[spec.source]
            data = self._keep(spec.index, encode_spec(spec, source))
        return data

    def prerender(self, workers: int | None = None) -> None:
        """Render every image now, in `workers` processes (default: all CPUs), instead of on first request.

        Worth it before many clients fetch a large web: serving threads render under one GIL. Processes are
        spawned (safe while the server's threads run); if they cannot start, rendering goes on serially.
        """
        jobs = [
            (spec, None if spec.source is None else self.specs[spec.source])
            for spec in self.specs
            if spec.index not in self._bytes
        ]
        workers = workers or os.cpu_count() or 1
        with tqdm(
            total=len(jobs), desc="rendering synthetic images", unit="img", disable=len(jobs) < 100
        ) as bar:
            if workers > 1 and len(jobs) >= 32:
                try:
                    with ProcessPoolExecutor(
                        workers, mp_context=multiprocessing.get_context("spawn")
                    ) as pool:
                        for index, data in pool.map(_render_job, jobs, chunksize=8):
                            self._keep(index, data)
                            bar.update()
                except BrokenProcessPool as exc:
                    log.warning("render processes failed (%s); rendering in this process instead", exc)
            for spec, _ in jobs:
                if spec.index not in self._bytes:
                    self.image_bytes(spec)
                    bar.update()

    def _keep(self, index: int, data: bytes) -> bytes:
        with self._lock:
            return self._bytes.setdefault(index, data)

    def take_rate_limit_token(self, key: str) -> bool:
        """True while `key` is still owed a 429 (the first `rate_limit_count` requests get one)."""
        with self._lock:
            n = self._rate_limited.get(key, 0)
            self._rate_limited[key] = n + 1
            return n < self.rate_limit_count

    def set_faults(self, enabled: bool) -> None:
        """Switch every fault on or off.

        Off, each fault URL serves a valid image and robots.txt allows all.
        """
        with self._lock:
            self.faults_enabled = enabled
            self._rate_limited.clear()

    # What it saw.

    @property
    def request_log(self) -> list[RequestRecord]:
        return list(self._require_started().stats.requests)

    @property
    def max_concurrent(self) -> dict[str, int]:
        """Host header -> the largest number of connections that were open at once."""
        return dict(self._require_started().stats.max_open)

    @property
    def open_connections(self) -> dict[str, int]:
        """Host header -> connections open right now."""
        return {h: n for h, n in self._require_started().stats.open.items() if n}

    def reset_stats(self) -> None:
        """Forget the request log and connection maxima (e.g. between two phases of a test)."""
        self._require_started().stats.reset()

    # Files describing it.

    def manifest_rows(self, include_unreachable: bool = False) -> list[dict]:
        """{url, caption, label, lang} for every image, then for every fault URL: a URL list of this web.

        include_unreachable appends the unreachable_urls (label and lang None, a plain caption).
        """
        rows = [
            {"url": img.url, "caption": img.caption, "label": img.label, "lang": img.lang}
            for img in self.images
        ]
        for name, url in self.fault_urls.items():
            spec = self._fault_specs[name]
            rows.append({"url": url, "caption": spec.caption, "label": spec.label, "lang": spec.lang})
        if include_unreachable:
            rows += [
                {"url": url, "caption": "a photo that cannot be fetched", "label": None, "lang": None}
                for url in self.unreachable_urls.values()
            ]
        return rows

    def write_url_list(self, path: str | Path, include_unreachable: bool = False) -> Path:
        """Write manifest_rows() as .parquet, .csv, .tsv, .jsonl, .json or .txt (optionally .gz)."""
        from curate.synthweb.files import write_rows

        return write_rows(self.manifest_rows(include_unreachable), Path(path))

    def write_warc(self, path: str | Path) -> Path:
        """Write the pages as a gzip member-compressed WARC (warcinfo, then request + response per page)."""
        from curate.synthweb.files import write_warc

        return write_warc(self, Path(path))

    def write_wat(self, path: str | Path, warc_path: str | Path | None = None) -> Path:
        """Write a WAT (Common Crawl's JSON metadata extract) of the pages' WARC; also the WARC when given."""
        from curate.synthweb.files import write_wat

        return write_wat(self, Path(path), None if warc_path is None else Path(warc_path))

    def page_meta(self, url: str) -> RenderedPage:
        """What a metadata extract records about a page: title, <base href>, raw IMG/A links, charset."""
        self._require_started()
        return self._rendered[url]

    def write_benchmark(
        self,
        directory: str | Path,
        n: int = 100,
        seed: int = 0,
        include_copies_from: Iterable[SynthImage] = (),
        fmt: str = "folder",
    ) -> BenchmarkSet:
        """A labelled eval set (folder or Parquet) of held-out images plus planted copies of some of this
        web's images; see curate.synthweb.benchmark.write_benchmark."""
        from curate.synthweb.benchmark import write_benchmark

        return write_benchmark(directory, n, seed, include_copies_from, web=self, fmt=fmt)


def _render_job(job: tuple[ImageSpec, ImageSpec | None]) -> tuple[int, bytes]:
    spec, source = job
    return spec.index, encode_spec(spec, source)
