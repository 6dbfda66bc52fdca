"""semantic_duplicate: not the representative of a semantic-duplicate cluster (`curate dedup --semantic`).

SemDeDup's rule: images whose CLIP embeddings are within cosine 1 - eps inside one k-means cluster carry
the same content (a re-shot, re-cropped or re-captioned copy that pHash does not catch); the one with
the highest CLIP score is kept.
"""

from typing import ClassVar

from curate.filters.base import Filter, Settings


class SemanticDuplicate(Filter):
    reason = "semantic_duplicate"
    settings: ClassVar[Settings] = {
        "drop_semantic_duplicates": (bool, "keep one sample per cluster of semantically identical images"),
    }
    needs = ("dedup",)

    def drop_when(self) -> str:
        return "NOT coalesce(dedup.is_representative, true) AND dedup.duplicate_kind = 'semantic'"
