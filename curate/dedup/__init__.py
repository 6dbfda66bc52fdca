"""Global deduplication: exact (sha256, URL) and near (perceptual-hash) duplicate clusters.

`hashing` applies the annotate stage's near-duplicate rule, `simhash` (thumbnail LSH) and `mih`
(exact multi-index hashing on pHashes) find candidate pairs without all-pairs, `near` picks between
them, `clusters` turns edges into clusters and representatives, `stage` is `curate dedup`.
"""

from curate.dedup.hashing import default_max_distance
from curate.dedup.stage import CLUSTERS_SCHEMA, clusters_path, dedup

__all__ = ["CLUSTERS_SCHEMA", "clusters_path", "dedup", "default_max_distance"]
