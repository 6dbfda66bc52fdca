"""Arrow schemas of every file curate writes, the uid, and the public vocabularies.

The schemas here are the contract documented in docs/FORMAT.md: a user can open any file
with DuckDB, pandas or Spark without this toolkit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import pyarrow as pa

UID_BYTES = 16


def make_uid(url: str, caption: str | None) -> str:
    """Stable id of a (url, caption) pair: 32 hex chars of BLAKE2b-128.

    The same pair gets the same uid on any machine and in any shard layout, so that
    signals, decisions and takedowns can be joined across runs.
    """
    return uid_digest(url, caption).hex()


def uid_digest(url: str, caption: str | None) -> bytes:
    """The 16 raw bytes behind `make_uid` (compact enough to keep one per row when deduplicating)."""
    return uid_digests([(url, caption)])


def uid_digests(pairs: Iterable[tuple[str | None, str | None]]) -> bytes:
    """`uid_digest` of many (url, caption) pairs, concatenated: the batch form for millions of rows."""
    blake2b = hashlib.blake2b
    return b"".join(
        blake2b(f"{url or ''}\x1f{caption or ''}".encode("utf-8", "surrogatepass"), digest_size=UID_BYTES).digest()
        for url, caption in pairs
    )


# Manifest rows: one image URL and its alt text, plus preserved source columns.
MANIFEST_FIELDS = [
    pa.field("uid", pa.string(), nullable=False),
    pa.field("url", pa.string()),
    pa.field("caption", pa.string()),
    # "ok", or why the row cannot be downloaded (missing_url, invalid_url); such rows are kept, not dropped.
    pa.field("status", pa.string()),
]
MANIFEST_SCHEMA = pa.schema(MANIFEST_FIELDS)
MANIFEST_STATUSES = ("ok", "missing_url", "invalid_url")

DOWNLOAD_STATUSES = ("success", "failed", "skipped")

# The download error vocabulary (docs/FORMAT.md). Stable public strings.
ERROR_CLASSES = (
    "dns",
    "connect",
    "timeout",
    "http_4xx",
    "http_5xx",
    "http_429",
    "too_many_redirects",
    "too_large",
    "not_an_image",
    "decode_error",
    "decompression_bomb",
    "unsupported_format",  # an image format Pillow knows that is not a web format (curate.images)
    "image_too_small",
    "aspect_ratio",
    "opted_out",
    "takedown",  # purged after download by `curate takedown` (status "skipped")
    "robots_disallowed",
    "x_robots_tag",
    "private_address",
    "invalid_url",
    "host_unreachable",
    "missing_url",
    "protocol_error",
    "unknown",
)

SHARD_FIELDS = [
    pa.field("uid", pa.string(), nullable=False),
    pa.field("url", pa.string()),
    pa.field("caption", pa.string()),
    pa.field("status", pa.string(), nullable=False),
    pa.field("error_class", pa.string()),
    pa.field("error_message", pa.string()),
    pa.field("http_status", pa.int32()),
    pa.field("final_url", pa.string()),
    pa.field("content_type", pa.string()),
    pa.field("image", pa.binary()),
    pa.field("width", pa.int32()),
    pa.field("height", pa.int32()),
    pa.field("original_width", pa.int32()),
    pa.field("original_height", pa.int32()),
    pa.field("image_format", pa.string()),  # format of the stored image (the re-encoded one by default)
    pa.field("sha256", pa.string()),  # of the downloaded body
    pa.field("bytes", pa.int64()),  # length of the downloaded body (decompressed), not of the stored image
    pa.field("fetched_at", pa.timestamp("ms", tz="UTC")),
    # The decoder's name for the downloaded image ("jpeg", "png", "webp", "gif", "mpo", ...): LAION's format rule.
    pa.field("original_format", pa.string()),
]
SHARD_SCHEMA = pa.schema(SHARD_FIELDS)

DECISIONS_SCHEMA = pa.schema(
    [
        pa.field("uid", pa.string(), nullable=False),
        pa.field("keep", pa.bool_(), nullable=False),
        pa.field("reasons", pa.list_(pa.string())),
    ]
)

# Reasons a recipe can drop a sample for (docs/FORMAT.md). Stable public strings.
DROP_REASONS = (
    "download_failed",
    "opted_out",
    "takedown",
    "url_pattern",
    "domain_too_long",
    "body_too_small",
    "image_format",
    "image_too_small",
    "aspect_ratio",
    "blank_image",
    "caption_too_short",
    "alt_text_too_short",
    "caption_boilerplate",
    "language",
    "nsfw_image",
    "nsfw_text",
    "exact_duplicate",
    "near_duplicate",
    "semantic_duplicate",
    "benchmark_overlap",
    "clip_score",
)
# Reasons a recipe's [balance] table adds (curate.concepts.balance), after every filter's.
BALANCE_REASONS = ("no_concept", "balanced_out")

TAKEDOWN_SCHEMA = pa.schema(
    [
        pa.field("kind", pa.string(), nullable=False),  # uid | url | domain
        pa.field("value", pa.string(), nullable=False),
        pa.field("reason", pa.string()),
        pa.field("requested_at", pa.timestamp("ms", tz="UTC")),
        pa.field("uids_purged", pa.int64()),
    ]
)


# A manifest column a user keeps (--keep-cols) named like a column the download stage adds, in any case
# (DuckDB compares names case-insensitively, so LAION's WIDTH beside a shard's width would read the
# resized width), is stored with this prefix. One rule for the manifest, the download and imports.
KEPT_COLUMN_PREFIX = "manifest_"
_STAGE_COLUMN_NAMES = {n.lower() for n in SHARD_SCHEMA.names} - {n.lower() for n in MANIFEST_SCHEMA.names}


def kept_column_name(name: str) -> str:
    """A kept column's name in manifests and shards: KEPT_COLUMN_PREFIX added when it names a stage column."""
    return f"{KEPT_COLUMN_PREFIX}{name}" if name.lower() in _STAGE_COLUMN_NAMES else name


def with_extra_columns(base: pa.Schema, extra: pa.Schema | None) -> pa.Schema:
    """Base schema followed by preserved source columns that it does not already name."""
    if extra is None:
        return base
    fields = list(base)
    names = set(base.names)
    fields += [f for f in extra if f.name not in names]
    return pa.schema(fields)
