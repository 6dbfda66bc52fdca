"""exact_duplicate: same bytes (sha256) or same URL as its cluster's representative (curate dedup)."""

from curate.filters.base import Filter


class ExactDuplicate(Filter):
    reason = "exact_duplicate"
    settings = {"drop_exact_duplicates": (bool, "keep one sample per identical image or URL")}
    needs = ("dedup",)

    def drop_when(self) -> str:
        return "NOT coalesce(dedup.is_representative, true) AND dedup.duplicate_kind IN ('exact', 'url')"
