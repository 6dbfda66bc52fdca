"""near_duplicate: a perceptual-hash near copy of its cluster's representative (curate dedup).

`max_near_duplicate_distance` tightens the radius used by `curate dedup` without rerunning it: only
members within that Hamming distance of their representative are dropped.
"""

from typing import ClassVar

from curate.filters.base import Filter, Settings


class NearDuplicate(Filter):
    reason = "near_duplicate"
    settings: ClassVar[Settings] = {
        "drop_near_duplicates": (bool, "keep one sample per cluster of near-identical images"),
        "max_near_duplicate_distance": (int, "only drop members this close (Hamming) to the representative"),
    }
    needs = ("dedup",)

    def drop_when(self) -> str:
        expr = "NOT coalesce(dedup.is_representative, true) AND dedup.duplicate_kind = 'near'"
        if "max_near_duplicate_distance" in self.config:
            limit = int(self.config["max_near_duplicate_distance"])
            expr += f" AND coalesce(dedup.distance_to_representative, 64) <= {limit}"
        return expr
