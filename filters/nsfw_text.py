"""nsfw_text: the caption's NSFW score (multilingual term list, 0-1) is above `max_nsfw_text`."""

from typing import ClassVar

from curate.filters.base import Filter, Settings


class NsfwText(Filter):
    reason = "nsfw_text"
    settings: ClassVar[Settings] = {
        "max_nsfw_text": ((int, float), "drop captions whose NSFW text score (0-1) is above this")
    }
    needs = ("nsfw",)

    def drop_when(self) -> str:
        return f"nsfw.nsfw_text > {float(self.config['max_nsfw_text'])}"
