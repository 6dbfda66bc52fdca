"""aspect_ratio: long side / short side of the ORIGINAL image above `max_aspect` (banners; DataComp basic: 3).

Computed in double precision from the original size, as DataComp divides (`max / min <= 3.0`), so a
ratio at the threshold decides the same way; shards without an original size use the stored `aspect`.
"""

from typing import ClassVar

from curate.filters.base import Filter, Settings


class AspectRatio(Filter):
    reason = "aspect_ratio"
    settings: ClassVar[Settings] = {
        "max_aspect": ((int, float), "drop images whose original long side / short side exceeds this")
    }
    needs = ("image",)

    def drop_when(self) -> str:
        ow, oh = "image.original_width", "image.original_height"
        ratio = f"coalesce(greatest({ow}, {oh})::DOUBLE / nullif(least({ow}, {oh}), 0), image.aspect)"
        return f"{ratio} > {float(self.config['max_aspect'])}"
