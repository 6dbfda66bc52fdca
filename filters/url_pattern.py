"""url_pattern: the image URL contains one of `drop_url_substrings` (case-sensitive, as LAION's `x in url`).

LAION-5B's parser skipped URLs containing ".svg", ".gif", "data:image" or "javascript:" before any
download (crawlingathome `parse_wat`); the rule reads the shard's `url` column, so no signal is needed.
"""

from typing import ClassVar

from curate.filters.base import Filter, Settings, literal

from curate.errors import CurateError


class UrlPattern(Filter):
    reason = "url_pattern"
    settings: ClassVar[Settings] = {
        "drop_url_substrings": (
            list,
            "drop URLs containing any of these strings (LAION: .svg .gif data:image javascript:)",
        ),
    }

    def drop_when(self) -> str:
        parts = [str(p) for p in self.config["drop_url_substrings"]]
        if not parts or any(not p for p in parts):
            raise CurateError('[filter] drop_url_substrings needs non-empty strings, e.g. [".svg", ".gif"]')
        return "(" + " OR ".join(f"contains(coalesce(s.url, ''), {literal(p)})" for p in parts) + ")"
