"""image_too_small: the shorter side is under `min_side` pixels (DataComp basic: 200)."""

from typing import ClassVar

from curate.filters.base import Filter, Settings


class ImageTooSmall(Filter):
    reason = "image_too_small"
    settings: ClassVar[Settings] = {"min_side": (int, "drop images whose shorter side is under this many pixels")}
    needs = ("image",)

    def drop_when(self) -> str:
        return f"least(image.width, image.height) < {int(self.config['min_side'])}"
