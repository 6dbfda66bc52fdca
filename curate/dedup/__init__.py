"""Global deduplication: exact (sha256, URL) and near (perceptual-hash) duplicate clusters.

`mih` finds hash pairs within a Hamming radius without all-pairs, `clusters` turns duplicate edges
into clusters and representatives, `stage` is the `curate dedup` stage over a dataset folder.
"""

from curate.dedup.stage import CLUSTERS_SCHEMA, clusters_path, dedup, default_max_distance

__all__ = ["CLUSTERS_SCHEMA", "clusters_path", "dedup", "default_max_distance"]
