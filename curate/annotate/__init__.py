"""Per-shard signals (`curate annotate`): image stats, hashes, language, NSFW scores, caption flags.

Signals are facts computed once per download shard and stored as DATASET/signals/<name>/NNNNN.parquet,
one row per shard row keyed by uid (docs/FORMAT.md, section "signals"); decisions are SQL over them.
"""

from curate.annotate.options import LANGUAGE_BACKENDS, Options
from curate.annotate.phash import DEFAULT_NEAR_DUP_DISTANCE, DEFAULT_NEAR_DUP_SIMILARITY, similarity
from curate.annotate.run import SIGNALS, annotate

__all__ = ["DEFAULT_NEAR_DUP_DISTANCE", "DEFAULT_NEAR_DUP_SIMILARITY", "LANGUAGE_BACKENDS", "SIGNALS", "Options", "annotate", "similarity"]
