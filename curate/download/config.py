"""Every option of `curate download` in one dataclass, so a run's settings can be logged and pickled."""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import asdict, dataclass, field
from typing import Any

from curate import __version__
from curate.download.safety import PRIVATE_NETWORKS

RESIZE_MODES = ("border", "keep_ratio", "keep_ratio_largest", "center_crop", "no")
ENCODE_FORMATS = ("jpg", "webp", "png")

log = logging.getLogger(__name__)


def _setting(default: Any, help: str, **meta: Any) -> Any:
    """A field with its CLI/recipe help (curate.settings builds `--flag` and reads the recipe key from it)."""
    return field(default=default, metadata={"help": help, **meta})


@dataclass(frozen=True)
class DownloadConfig:
    # Images
    image_size: int = _setting(256, "side of the stored image in pixels")
    resize_mode: str = _setting(
        "border",
        "img2dataset's meanings: border pads to a square, keep_ratio sets the "
        "shorter side, center_crop crops a square, no keeps the size",
        choices=RESIZE_MODES,
    )
    resize_only_if_bigger: bool = _setting(False, "never upscale a smaller image")
    encode_format: str = _setting("jpg", "format of the stored image", choices=ENCODE_FORMATS)
    encode_quality: int = _setting(95, "JPEG/WebP quality; for PNG a compression level 0-9")
    reencode: bool = _setting(
        True,
        "resize and re-encode; --no-reencode stores the original bytes unchanged "
        "(no resize; metadata is NOT stripped)",
    )
    keep_exif: bool = _setting(False, "keep EXIF (may include GPS) and ICC metadata; stripped by default")
    min_image_size: int = _setting(0, "refuse images whose shorter side is below this (image_too_small)")
    max_aspect_ratio: float = _setting(0.0, "refuse images with long/short side above this (0: no limit)")
    max_pixels: int = _setting(
        50_000_000, "decompression-bomb guard, checked from the header before decoding"
    )
    # curate.download.budget: decode memory stays under about 12 bytes x this (800 MB by default)
    decode_pixel_budget: int = _setting(
        64_000_000,
        "decoded pixels in flight per worker process (bounds decode memory, 12 B each; 0: no limit)",
    )
    # Safety
    allow_networks: tuple[str, ...] = _setting(
        (),
        "a network that is not public but may be reached, e.g. an internal mirror 10.1.0.0/16 or a local "
        "server 127.0.0.1/32 (repeatable or comma-separated); link-local and cloud-metadata addresses only "
        "when named one by one (a /32 or /128): curate.download.safety",
        metavar="CIDR",
    )
    allow_private_network: bool = _setting(
        False,
        "deprecated shorthand for --allow-networks of loopback and the private ranges (never link-local "
        "or cloud-metadata addresses); name the networks instead",
    )
    ca_file: str | None = _setting(
        None, "CA bundle to trust for HTTPS (e.g. an internal mirror's private CA)"
    )
    max_redirects: int = _setting(5, "redirect hops followed")
    max_bytes: int = _setting(32 * 1024 * 1024, "largest body read; larger is dropped (too_large)")
    connect_timeout: float = _setting(5.0, "seconds to open a connection")
    read_timeout: float = _setting(10.0, "seconds a read may wait for data")
    total_timeout: float = _setting(
        30.0, "total seconds of one row's exchange: connect, each redirect hop, headers, body"
    )
    # Politeness
    user_agent_token: str = _setting("curate", "product token sent in User-Agent and matched in robots.txt")
    contact_url: str = _setting(
        "https://github.com/curate-dataset/curate", "URL in the User-Agent where site owners reach you"
    )
    max_connections_per_host: int = _setting(2, "simultaneous connections to one host, per worker process")
    respect_robots_txt: bool = _setting(True, "fetch and honour robots.txt (--no-respect-robots-txt: do not)")
    # The "not for AI" directives and the search-index ones that img2dataset honours too (docs/CONSENT.md)
    x_robots_tag_block: tuple[str, ...] = _setting(
        ("noai", "noimageai", "noindex", "noimageindex"), "X-Robots-Tag directives that refuse an image"
    )
    request_retries: int = _setting(2, "retries of a 429/503 answer, after a jittered backoff", was="retries")
    backoff_base: float = _setting(0.5, "seconds of the first backoff (doubled per retry, jittered)")
    max_backoff: float = _setting(
        30.0, "longest wait for Retry-After; longer requests are recorded as failed"
    )
    dns_concurrency: int = _setting(8, "simultaneous DNS lookups per worker process")
    dns_failure_limit: int = _setting(
        50, "consecutive failed lookups with none resolved before DNS is considered down"
    )
    host_failure_limit: int = _setting(
        5, "consecutive connect/timeout failures before a host is cut off (0: never)"
    )
    opt_out: tuple[str, ...] = _setting(
        (),
        "file of domains and URL prefixes whose rows are skipped before any "
        "request (repeatable); DATASET/takedown.parquet is always honoured",
        metavar="FILE",
    )
    # Throughput
    threads: int = _setting(32, "fetch+process threads per worker process")
    row_group_rows: int = _setting(256, "rows per Parquet row group in a shard")

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
                    f"--allow-networks {net!r} is not a network: write e.g. 10.0.0.0/8 or 127.0.0.1/32"
                ) from None
        if self.allow_private_network:
            log.warning(
                "allow_private_network is deprecated: it allows %s; name only the networks you need "
                "with allow_networks / --allow-networks",
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
