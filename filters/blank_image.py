"""blank_image: a uniform or near-uniform image (placeholders, spacer GIFs)."""

from typing import ClassVar

from curate.filters.base import Filter, Settings


class BlankImage(Filter):
    reason = "blank_image"
    settings: ClassVar[Settings] = {"drop_blank_images": (bool, "drop images that annotate flagged as blank")}
    needs = ("image",)

    def drop_when(self) -> str:
        return "coalesce(image.is_blank, false)"
