"""Every option of `curate download` in one dataclass, so a run's settings can be logged and pickled."""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import asdict, dataclass

from curate import __version__
from curate.download.safety import PRIVATE_NETWORKS

RESIZE_MODES = ("border", "keep_ratio", "keep_ratio_largest", "center_crop", "no")
ENCODE_FORMATS = ("jpg", "webp", "png")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DownloadConfig:
    # Images
    image_size: int = 256
    resize_mode: str = "border"
    resize_only_if_bigger: bool = False
    encode_format: str = "jpg"
    encode_quality: int = 95  # JPEG/WebP quality; PNG compression level 0-9
    reencode: bool = True  # False keeps the original bytes (and their metadata) untouched
    keep_exif: bool = False  # EXIF (GPS!) and other metadata are stripped unless set
    min_image_size: int = 0  # refuse images whose shorter side is below this (image_too_small)
    max_aspect_ratio: float = 0.0  # refuse images with long/short side above this (0 = no limit)
    max_pixels: int = 50_000_000  # decompression-bomb guard, checked from the header before decoding
    # Decoded pixels in flight per worker process (curate.download.budget): decode memory stays under about
    # 12 bytes x this (800 MB by default) whatever the images; 0 = no limit
    decode_pixel_budget: int = 64_000_000
    # Safety
    # Networks (CIDR) reachable although not public: an internal mirror, a local test server. Link-local and
    # cloud-metadata addresses stay refused unless named one by one (/32, /128): curate.download.safety.
    allow_networks: tuple[str, ...] = ()
    # Deprecated shorthand for older recipes: adds safety.PRIVATE_NETWORKS to allow_networks.
    allow_private_network: bool = False
    ca_file: str | None = None  # extra CA bundle for HTTPS (an internal mirror with a private CA)
    max_redirects: int = 5
    max_bytes: int = 32 * 1024 * 1024
    connect_timeout: float = 5.0
    read_timeout: float = 10.0
    total_timeout: float = 30.0
    # Politeness
    user_agent_token: str = "curate"
    contact_url: str = "https://github.com/curate-dataset/curate"
    max_connections_per_host: int = 2
    respect_robots_txt: bool = True
    # X-Robots-Tag directives that refuse an image: the "not for AI" ones and the search-index ones that
    # img2dataset honours too (docs/CONSENT.md)
    x_robots_tag_block: tuple[str, ...] = ("noai", "noimageai", "noindex", "noimageindex")
    retries: int = 2  # retries of a 429/503 answer, after a jittered backoff
    backoff_base: float = 0.5
    max_backoff: float = 30.0  # a Retry-After longer than this is not waited for (recorded as failed)
    dns_concurrency: int = 8  # simultaneous DNS lookups per worker process
    dns_failure_limit: int = 50  # consecutive failed lookups with none resolved: DNS is down, stop asking
    host_failure_limit: int = 5  # consecutive connect/timeout failures before a host is cut off
    opt_out: tuple[str, ...] = ()  # domains and URL prefixes whose rows are skipped before any request
    # Throughput
    threads: int = 32  # fetch+process threads per worker process
    row_group_rows: int = 256

    def __post_init__(self) -> None:
        from curate.errors import CurateError

        for name in ("x_robots_tag_block", "opt_out", "allow_networks"):  # lists from TOML/JSON -> tuples
            value = getattr(self, name)
            if isinstance(value, str):
                value = (value,)
            object.__setattr__(self, name, tuple(value))

        if self.resize_mode not in RESIZE_MODES:
            raise CurateError(
                f"unknown resize mode {self.resize_mode!r}: use one of {', '.join(RESIZE_MODES)}"
            )
        if self.encode_format not in ENCODE_FORMATS:
            raise CurateError(
                f"unknown encode format {self.encode_format!r}: use one of {', '.join(ENCODE_FORMATS)}"
            )
        if self.image_size <= 0:
            raise CurateError(f"--image-size must be positive, got {self.image_size}")
        if self.max_connections_per_host < 1:
            raise CurateError("--max-connections-per-host must be at least 1")
        if self.threads < 1:
            raise CurateError("--threads must be at least 1")
        for net in self.allow_networks:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                raise CurateError(
                    f"--allow-network {net!r} is not a network: write e.g. 10.0.0.0/8 or 127.0.0.1/32"
                ) from None
        if self.allow_private_network:
            log.warning(
                "allow_private_network is deprecated: it allows %s; name only the networks you need "
                "with allow_networks / --allow-network",
                ", ".join(PRIVATE_NETWORKS),
            )
            # Kept so that older recipes run; it never reaches link-local or metadata addresses.
            networks = tuple(dict.fromkeys(self.allow_networks + PRIVATE_NETWORKS))
            object.__setattr__(self, "allow_networks", networks)
        if self.decode_pixel_budget < 0:
            raise CurateError("--decode-pixel-budget must be >= 0 (0 = no limit)")
        if self.max_redirects < 0 or self.max_bytes <= 0:
            raise CurateError("--max-redirects must be >= 0 and --max-bytes > 0")

    @property
    def user_agent(self) -> str:
        """Honest User-Agent: the robots.txt product token, the version, and a contact URL."""
        return f"{self.user_agent_token}/{__version__} (+{self.contact_url})"

    def to_dict(self) -> dict:
        return asdict(self)
