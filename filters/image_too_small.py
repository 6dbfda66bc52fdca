"""image_too_small: the shorter side of the ORIGINAL image is under `min_side` pixels (DataComp basic: 200).

The downloader resizes (`border` pads every image to a 256 px square, `keep_ratio_largest` shrinks a
1000x600 photo to 256x154), so the stored size says nothing about the picture: DataComp's rule reads
`min(original_width, original_height)`, and so does this one. Shards without an original size (another
engine's) fall back to the stored size.
"""

from typing import ClassVar

from curate.filters.base import Filter, Settings


class ImageTooSmall(Filter):
    reason = "image_too_small"
    settings: ClassVar[Settings] = {
        "min_side": (int, "drop images whose original shorter side is under this many pixels")
    }
    needs = ("image",)

    def drop_when(self) -> str:
        width = "coalesce(image.original_width, image.width)"
        height = "coalesce(image.original_height, image.height)"
        return f"least({width}, {height}) < {int(self.config['min_side'])}"
