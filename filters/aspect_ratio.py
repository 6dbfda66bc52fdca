"""aspect_ratio: long side / short side above `max_aspect` (banners, strips; DataComp basic: 3)."""

from typing import ClassVar

from curate.filters.base import Filter, Settings


class AspectRatio(Filter):
    reason = "aspect_ratio"
    settings: ClassVar[Settings] = {"max_aspect": ((int, float), "drop images whose long side / short side exceeds this")}
    needs = ("image",)

    def drop_when(self) -> str:
        return f"image.aspect > {float(self.config['max_aspect'])}"
