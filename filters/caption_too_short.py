"""caption_too_short: fewer than `min_caption_words` words or `min_caption_chars` characters.

Both are counted on the caption exactly as stored, the way DataComp's basic filter counts them in
Python: characters are code points with every space included (`len(text)`), words are runs between
Python's whitespace characters (`len(text.split())`, the Unicode spaces and \\x1c-\\x1f included).
DataComp keeps `len(text) > 5` and more than 2 words, i.e. min_caption_chars = 6, min_caption_words = 3.
"""

from typing import ClassVar

from curate.filters.base import Filter, Settings

# The characters Python's str.isspace() accepts, as an RE2 class (tests compare the two on every one).
PY_WHITESPACE = (
    r"\t\n\x{0b}\x{0c}\r\x{1c}-\x{1f} \x{85}\x{a0}\x{1680}\x{2000}-\x{200a}"
    r"\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}"
)


def at_least_words(n: int) -> str:
    """RE2 pattern that matches a text with at least n (>= 1) words: one match, no list of words built."""
    return f"^[{PY_WHITESPACE}]*[^{PY_WHITESPACE}]+(?:[{PY_WHITESPACE}]+[^{PY_WHITESPACE}]+){{{n - 1}}}"


class CaptionTooShort(Filter):
    reason = "caption_too_short"
    settings: ClassVar[Settings] = {
        "min_caption_words": (int, "drop captions with fewer whitespace-separated words (DataComp: 3)"),
        "min_caption_chars": (int, "drop captions with fewer characters, spaces included (DataComp: 6)"),
    }

    def drop_when(self) -> str:
        words = int(self.config.get("min_caption_words", 0))
        chars = int(self.config.get("min_caption_chars", 0))
        caption = "coalesce(s.caption, '')"
        parts = [f"length({caption}) < {chars}"]
        if words > 0:
            parts.append(f"NOT regexp_matches({caption}, '{at_least_words(words)}')")
        return "(" + " OR ".join(parts) + ")"
