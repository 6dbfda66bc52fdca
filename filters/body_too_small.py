"""body_too_small: the downloaded body is under `min_body_bytes` bytes (LAION-5B: 5,000).

Reads the shard's `bytes` column: the length of the body as downloaded (after HTTP content decoding),
not of the stored, re-encoded image. LAION tested `len(response.content) < 5000` on the same bytes.
"""

from typing import ClassVar

from curate.filters.base import Filter, Settings


class BodyTooSmall(Filter):
    reason = "body_too_small"
    settings: ClassVar[Settings] = {
        "min_body_bytes": (
            int,
            "drop images whose downloaded file is smaller than this many bytes (LAION-5B: 5000)",
        ),
    }

    def drop_when(self) -> str:
        return f"s.bytes < {int(self.config['min_body_bytes'])}"
