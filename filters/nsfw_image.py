"""nsfw_image: the image NSFW score (open_nsfw, 0-1) is above `max_nsfw_image`.

A sample whose image score is null (it was not scored) is not dropped by this rule.
"""

from typing import ClassVar

from curate.filters.base import Filter, Settings


class NsfwImage(Filter):
    reason = "nsfw_image"
    settings: ClassVar[Settings] = {
        "max_nsfw_image": ((int, float), "drop images whose NSFW score (0-1) is above this")
    }
    needs = ("nsfw",)

    def drop_when(self) -> str:
        return f"nsfw.nsfw_image > {float(self.config['max_nsfw_image'])}"
