"""caption_boilerplate: the alt text says nothing about the image ("image", "IMG_1234.jpg", a URL, HTML)."""

from typing import ClassVar

from curate.filters.base import Filter, Settings


class CaptionBoilerplate(Filter):
    reason = "caption_boilerplate"
    settings: ClassVar[Settings] = {
        "drop_boilerplate_captions": (bool, "drop file-name, URL, HTML and boilerplate captions")
    }
    needs = ("caption",)

    def drop_when(self) -> str:
        return (
            "coalesce(caption.caption_is_boilerplate OR caption.caption_is_filename "
            "OR caption.caption_is_url OR caption.caption_has_html, false)"
        )
