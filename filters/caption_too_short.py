"""caption_too_short: fewer than `min_caption_words` words or `min_caption_chars` characters."""

from typing import ClassVar

from curate.filters.base import Filter, Settings


class CaptionTooShort(Filter):
    reason = "caption_too_short"
    settings: ClassVar[Settings] = {
        "min_caption_words": (int, "drop captions with fewer words (DataComp basic: 3, i.e. more than 2)"),
        "min_caption_chars": (int, "drop captions with fewer characters (DataComp basic: 5)"),
    }
    needs = ("caption",)

    def drop_when(self) -> str:
        words = int(self.config.get("min_caption_words", 0))
        chars = int(self.config.get("min_caption_chars", 0))
        return f"(coalesce(caption.caption_words, 0) < {words} OR coalesce(caption.caption_chars, 0) < {chars})"
