"""exact_duplicate: same bytes (sha256) or same URL as its cluster's representative (curate dedup)."""

from typing import ClassVar

from curate.filters.base import Filter, Settings


class ExactDuplicate(Filter):
    reason = "exact_duplicate"
    settings: ClassVar[Settings] = {
        "drop_exact_duplicates": (bool, "keep one sample per identical image or URL")
    }
    needs = ("dedup",)

    def drop_when(self) -> str:
        return "NOT coalesce(dedup.is_representative, true) AND dedup.duplicate_kind IN ('exact', 'url')"
