"""alt_text_too_short: fewer than `min_alt_text_chars` characters after LAION-5B's alt-text cleanup.

Reads the opt-in `alt_text` signal (`curate annotate --signals alt_text`): the caption's length after
ftfy, newline -> space, strip and dropping unprintable characters, as LAION's crawler counted it
(`len(alt_text) < 5` was skipped). caption_too_short counts the caption as stored instead (DataComp's way).
"""

from typing import ClassVar

from curate.filters.base import Filter, Settings


class AltTextTooShort(Filter):
    reason = "alt_text_too_short"
    settings: ClassVar[Settings] = {
        "min_alt_text_chars": (
            int,
            "drop captions with fewer characters after LAION's ftfy cleanup (LAION-5B: 5)",
        ),
    }
    needs = ("alt_text",)

    def drop_when(self) -> str:
        return f"alt_text.laion_alt_chars < {int(self.config['min_alt_text_chars'])}"
