"""takedown: DATASET/takedown.parquet names the sample by uid, URL or domain (curate takedown)."""

from curate.filters.base import Filter


class Takedown(Filter):
    reason = "takedown"
    always = True

    def drop_when(self) -> str:
        return "coalesce(takedown.hit, false) OR s.error_class = 'takedown'"
