"""image_format: the downloaded image's format is not in `keep_original_formats` (LAION-5B: JPEG, PNG, WEBP).

Reads the shard's `original_format`, the decoder's (Pillow's) name for the downloaded bytes, lower case:
"jpeg", "png", "webp", "gif", "mpo" (a camera JPEG with extra frames, which LAION's list also left out).
The stored image is re-encoded, so its `image_format` cannot answer this. Shards written without
`original_format` (another engine) leave the rule silent.
"""

from typing import ClassVar

from curate.filters.base import Filter, Settings, literal

from curate.errors import CurateError


class ImageFormat(Filter):
    reason = "image_format"
    settings: ClassVar[Settings] = {
        "keep_original_formats": (
            list,
            'keep only images downloaded in these formats, e.g. ["jpeg", "png", "webp"]',
        ),
    }

    def drop_when(self) -> str:
        keep = [str(f).lower() for f in self.config["keep_original_formats"]]
        if not keep:
            raise CurateError(
                '[filter] keep_original_formats is empty: list the formats to keep, e.g. ["jpeg", "png"]'
            )
        return f"lower(s.original_format) NOT IN ({', '.join(literal(f) for f in keep)})"
