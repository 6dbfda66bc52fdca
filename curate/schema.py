"""Arrow schemas of every file curate writes, the uid, and the public vocabularies.

The schemas here are the contract documented in docs/FORMAT.md: a user can open any file
with DuckDB, pandas or Spark without this toolkit. Each is defined here once and imported by the code
that writes or reads it. The vocabularies are plain tuples; the Arrow schemas are built on first use
(module `__getattr__`), so the CLI can list signals and stages in its help without loading pyarrow.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
        blake2b(
            f"{url or ''}\x1f{caption or ''}".encode("utf-8", "surrogatepass"), digest_size=UID_BYTES
        ).digest()
        for url, caption in pairs
    )


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

# The stages `curate run` runs, in order (curate.run).
STAGES = ("ingest", "download", "annotate", "dedup", "overlap", "filter", "export", "train")

# The per-shard signal sets `curate annotate` writes to signals/<name>/NNNNN.parquet, in the order it computes
# them; the opt-in ones are computed only when named (clip needs a model the user chooses, concepts an entry
# list, alt_text serves LAION's recipe alone).
SIGNAL_NAMES = ("image", "hashes", "language", "caption", "alt_text", "nsfw", "concepts", "clip")
OPT_IN_SIGNALS = ("concepts", "clip", "alt_text")

# How a sample duplicates its cluster's representative (clusters.parquet); semantic only with --semantic.
DUPLICATE_KINDS = ("exact", "url", "near", "semantic")


def __getattr__(name: str) -> Any:
    """MANIFEST_SCHEMA, SHARD_SCHEMA, the signal schemas ...: built with pyarrow when first asked for."""
    if name.startswith("__"):  # import machinery probing (__path__, ...): not a schema
        raise AttributeError(name)
    schemas = _arrow_schemas()
    if name not in schemas:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals().update(schemas)  # later lookups find them directly
    return schemas[name]


@functools.cache
def _arrow_schemas() -> dict[str, Any]:
    import pyarrow as pa

    uid = pa.field("uid", pa.string(), nullable=False)

    # Manifest rows: one image URL and its alt text, plus preserved source columns.
    MANIFEST_FIELDS = [
        pa.field("uid", pa.string(), nullable=False),
        pa.field("url", pa.string()),
        pa.field("caption", pa.string()),
        # "ok", or why the row cannot be downloaded (missing_url, invalid_url): such rows are kept.
        pa.field("status", pa.string()),
    ]
    MANIFEST_SCHEMA = pa.schema(MANIFEST_FIELDS)
    # Manifest parts `curate crawl` writes: the manifest columns and where each pair was found.
    CRAWL_SCHEMA = with_extra_columns(
        MANIFEST_SCHEMA,
        pa.schema(
            [
                pa.field("page_url", pa.string()),
                pa.field("page_lang", pa.string()),
                pa.field("crawl_time", pa.timestamp("ms", tz="UTC")),
                pa.field("source", pa.string()),
                pa.field("width", pa.int32()),
                pa.field("height", pa.int32()),
            ]
        ),
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
        pa.field("bytes", pa.int64()),  # of the downloaded body (decompressed), not of the stored image
        pa.field("fetched_at", pa.timestamp("ms", tz="UTC")),
        # The decoder's name for the downloaded image ("jpeg", "png", "webp", "gif", "mpo", ...):
        # LAION's rule.
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
    TAKEDOWN_SCHEMA = pa.schema(
        [
            pa.field("kind", pa.string(), nullable=False),  # uid | url | domain
            pa.field("value", pa.string(), nullable=False),
            pa.field("reason", pa.string()),
            pa.field("requested_at", pa.timestamp("ms", tz="UTC")),
            pa.field("uids_purged", pa.int64()),
        ]
    )

    # signals/<name>/NNNNN.parquet, one set per SIGNAL_NAMES entry.
    IMAGE_SCHEMA = pa.schema(
        [
            uid,
            pa.field("width", pa.int32()),
            pa.field("height", pa.int32()),
            pa.field("aspect", pa.float32()),  # long side / short side of the original image, >= 1
            pa.field("bytes", pa.int64()),
            pa.field("format", pa.string()),
            pa.field("original_width", pa.int32()),
            pa.field("original_height", pa.int32()),
            pa.field("mean_luma", pa.float32()),  # 0-255, on the thumbnail
            pa.field("luma_std", pa.float32()),
            pa.field("is_blank", pa.bool_()),
        ]
    )
    HASHES_SCHEMA = pa.schema(
        [
            uid,
            pa.field("sha256", pa.string()),
            pa.field(
                "phash", pa.int64()
            ),  # 64-bit DCT pHash bit pattern as signed int64 (curate.annotate.phash)
            pa.field(
                "thumb", pa.binary(192)
            ),  # 8x8 RGB block means, row-major, to verify pHash candidate pairs
        ]
    )
    LANGUAGE_SCHEMA = pa.schema(
        [
            uid,
            pa.field("language", pa.string()),
            pa.field("language_score", pa.float32()),
            pa.field("language_backend", pa.string()),
        ]
    )
    CAPTION_SCHEMA = pa.schema(
        [
            uid,
            pa.field("caption_chars", pa.int32()),
            pa.field("caption_words", pa.int32()),
            pa.field("caption_is_filename", pa.bool_()),
            pa.field("caption_is_url", pa.bool_()),
            pa.field("caption_has_html", pa.bool_()),
            pa.field("caption_is_boilerplate", pa.bool_()),
        ]
    )
    ALT_TEXT_SCHEMA = pa.schema([uid, pa.field("laion_alt_chars", pa.int32())])  # 0: null or empty caption
    NSFW_SCHEMA = pa.schema(
        [
            uid,
            pa.field(
                "nsfw_image", pa.float32()
            ),  # P(nsfw) from open_nsfw, null when there is no decodable image
            pa.field(
                "nsfw_text", pa.float32()
            ),  # 0-1 from curate/data/nsfw_terms.txt (0 for an empty caption)
            pa.field("nsfw_text_terms", pa.list_(pa.string())),
        ]
    )
    CONCEPTS_SCHEMA = pa.schema([uid, pa.field("concept_ids", pa.list_(pa.int32()))])
    # signals/concepts/_entries/entries.parquet: the entry list the concept_ids index.
    CONCEPT_ENTRIES_SCHEMA = pa.schema(
        [
            pa.field("id", pa.int32(), nullable=False),
            pa.field("entry", pa.string(), nullable=False),
            pa.field("lang", pa.string()),
        ]
    )

    CLIP_SCHEMA = clip_schema(512)  # ViT-B-32's width; the written files carry their model's embed_dim
    _SIGNAL_SCHEMA_LIST = (
        IMAGE_SCHEMA,
        HASHES_SCHEMA,
        LANGUAGE_SCHEMA,
        CAPTION_SCHEMA,
        ALT_TEXT_SCHEMA,
        NSFW_SCHEMA,
        CONCEPTS_SCHEMA,
        CLIP_SCHEMA,
    )
    SIGNAL_SCHEMAS = dict(zip(SIGNAL_NAMES, _SIGNAL_SCHEMA_LIST, strict=True))

    # signals/dedup/clusters.parquet (curate dedup): one row per sample in a cluster of two or more.
    CLUSTERS_SCHEMA = pa.schema(
        [
            uid,
            pa.field("cluster_id", pa.int64(), nullable=False),
            pa.field("representative_uid", pa.string(), nullable=False),
            pa.field("is_representative", pa.bool_(), nullable=False),
            pa.field("duplicate_kind", pa.string()),  # a DUPLICATE_KINDS value; null for the representative
            pa.field("distance_to_representative", pa.int16()),
            pa.field("against_dataset", pa.string()),  # set when the representative lives in another dataset
        ]
    )

    # signals/overlap/<benchmark>.parquet and <benchmark>.eval.parquet (curate overlap).
    MATCHES_SCHEMA = pa.schema(
        [
            uid,
            pa.field("benchmark", pa.string(), nullable=False),
            pa.field("eval_id", pa.string(), nullable=False),
            pa.field("distance", pa.int16()),  # Hamming distance of the hashes; null for caption matches
            pa.field("match_kind", pa.string(), nullable=False),  # image | caption
        ]
    )
    EVAL_SCHEMA = pa.schema(
        [
            pa.field("eval_id", pa.string(), nullable=False),
            pa.field("label", pa.string()),
            pa.field("overlapping", pa.bool_(), nullable=False),
            pa.field(
                "error", pa.string()
            ),  # why the image could not be hashed (then it cannot overlap by image)
        ]
    )
    return {name: value for name, value in locals().items() if name.isupper()}


def clip_schema(dim: int, metadata: dict[bytes, bytes] | None = None) -> pa.Schema:
    """The clip signal's schema for a model of embedding width `dim` (model and checkpoint in `metadata`)."""
    import pyarrow as pa

    return pa.schema(
        [
            pa.field("uid", pa.string(), nullable=False),
            pa.field("clip_score", pa.float32()),  # cosine of the two embeddings (LAION's `similarity`)
            pa.field("image_embedding", pa.list_(pa.float16(), dim)),  # L2-normalized
            pa.field("text_embedding", pa.list_(pa.float16(), dim)),  # L2-normalized
        ],
        metadata=metadata,
    )


# A manifest column a user keeps (--keep-cols) named like a column the download stage adds, in any case
# (DuckDB compares names case-insensitively, so LAION's WIDTH beside a shard's width would read the
# resized width), is stored with this prefix. One rule for the manifest, the download and imports.
KEPT_COLUMN_PREFIX = "manifest_"


def kept_column_name(name: str) -> str:
    """A kept column's name in manifests and shards: KEPT_COLUMN_PREFIX added when it names a stage column."""
    return f"{KEPT_COLUMN_PREFIX}{name}" if name.lower() in _stage_column_names() else name


@functools.cache
def _stage_column_names() -> frozenset[str]:
    shard, manifest = _arrow_schemas()["SHARD_SCHEMA"], _arrow_schemas()["MANIFEST_SCHEMA"]
    return frozenset({n.lower() for n in shard.names} - {n.lower() for n in manifest.names})


def with_extra_columns(base: pa.Schema, extra: pa.Schema | None) -> pa.Schema:
    """Base schema followed by preserved source columns that it does not already name."""
    import pyarrow as pa

    if extra is None:
        return base
    fields = list(base)
    names = set(base.names)
    fields += [f for f in extra if f.name not in names]
    return pa.schema(fields)
