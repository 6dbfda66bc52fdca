"""download_failed: the image could not be fetched or decoded (see the shard's error_class)."""

from curate.filters.base import Filter, literal
from curate.filters.opted_out import OPT_OUT_CLASSES


class DownloadFailed(Filter):
    reason = "download_failed"
    always = True

    def drop_when(self) -> str:
        return (
            f"s.status <> 'success' AND coalesce(s.error_class, '') NOT IN "
            f"({', '.join(literal(c) for c in OPT_OUT_CLASSES)})"
        )
