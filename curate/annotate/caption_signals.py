"""The `caption` signal: length counts and flags for captions that say nothing about the image.

All of it is vectorised Arrow compute (RE2 regular expressions in C++), about a million captions per
second, so no Python loop runs per caption. Rules (stable, tested):
- caption_chars: Unicode characters after trimming whitespace; caption_words: whitespace-separated
  words (DataComp's definition; a Chinese caption without spaces counts as one word).
- caption_is_url: the whole caption is one URL (scheme://..., www..., or a bare domain with a path).
- caption_is_filename: the whole caption is a file name with an image extension ("my cat.JPG").
- caption_has_html: an HTML tag (<b>, </a>, <img src=...>) or character entity (&amp;, &#39;).
- caption_is_boilerplate: after lower-casing and dropping an image extension and every character that
  is not a letter, nothing or a stock phrase is left ("image", "Photo 3", "untitled", "IMG_1234.jpg",
  "DSC01234", "click to enlarge", "12345").
A null or empty caption has 0 characters and words and every flag false (caption_too_short handles it).
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from curate.annotate.options import Options
from curate.schema import CAPTION_SCHEMA

CAPTION_COLUMNS = ("uid", "caption")

_IMAGE_EXT = r"(jpe?g|jfif|png|gif|webp|bmp|tiff?|heic|heif|avif|svg|ico)"
_URL = (
    r"(?i)^((https?|ftp)://\S+|www\.\S+|[a-z0-9-]+(\.[a-z0-9-]+)*"
    r"\.(com|net|org|info|biz|io|co|uk|de|fr|ru|jp|cn|br|it|es|nl|pl|au|ca|in|edu|gov)(/\S*)?)$"
)
_FILENAME = rf"(?i)^[^/\\<>]*[^\s/\\<>.]\.{_IMAGE_EXT}$"
_HTML = r"(?i)(<\s*/?\s*[a-z][a-z0-9-]*(\s[^<>]*)?/?\s*>|&(#[0-9]+|#x[0-9a-f]+|[a-z]+);)"
_EXTENSION = rf"(?i)\.{_IMAGE_EXT}$"

BOILERPLATE = frozenset(
    {
        "",
        "image",
        "images",
        "img",
        "photo",
        "photos",
        "picture",
        "pictures",
        "pic",
        "pics",
        "photograph",
        "untitled",
        "untitled image",
        "no title",
        "notitle",
        "thumbnail",
        "thumb",
        "logo",
        "icon",
        "banner",
        "placeholder",
        "default",
        "default image",
        "null",
        "none",
        "undefined",
        "nan",
        "n a",
        "na",
        "alt",
        "alt text",
        "image not found",
        "no image",
        "no image available",
        "image unavailable",
        "loading",
        "spacer",
        "blank",
        "click here",
        "click to enlarge",
        "enlarge",
        "zoom",
        "product image",
        "featured image",
        "main image",
        "view image",
        "image description",
        "description",
        "gallery image",
        "gallery",
        "cover",
        "cover image",
        "slide",
        "slider",
        "header",
        "header image",
        "hero image",
        "title",
        "caption",
        "avatar",
        "profile picture",
        "user avatar",
        "advertisement",
        "ad",
        "file",
        "download",
        "screenshot",
        "screen shot",
        "whatsapp image",
        "capture",
        "unnamed",
        "dsc",
        "dscn",
        "dscf",
        "dcim",
        "pxl",
        "gopr",
        "mvimg",
        "cimg",
        "sam",
        "wp",
        "p",
        "fullsizerender",
    }
)
_BOILERPLATE = pa.array(sorted(BOILERPLATE), pa.string())


def caption_signal(shard: pa.Table, opts: Options) -> tuple[pa.Table, dict]:
    caption = pc.utf8_trim_whitespace(shard.column("caption").combine_chunks().cast(pa.string()))
    present = pc.fill_null(pc.greater(pc.utf8_length(caption), 0), False)
    text = pc.if_else(present, caption, None)  # empty -> null, so every flag below is null -> false

    def flag(expr: pa.Array) -> pa.Array:
        return pc.fill_null(expr, False)

    words = pc.list_value_length(pc.utf8_split_whitespace(text))
    letters = pc.utf8_trim_whitespace(
        pc.replace_substring_regex(
            pc.replace_substring_regex(pc.utf8_lower(text), _EXTENSION, ""), r"[^\pL]+", " "
        )
    )
    table = pa.table(
        {
            "uid": shard.column("uid"),
            "caption_chars": pc.fill_null(pc.utf8_length(text), 0).cast(pa.int32()),
            "caption_words": pc.fill_null(words, 0).cast(pa.int32()),
            "caption_is_filename": flag(pc.match_substring_regex(text, _FILENAME)),
            "caption_is_url": flag(pc.match_substring_regex(text, _URL)),
            "caption_has_html": flag(pc.match_substring_regex(text, _HTML)),
            "caption_is_boilerplate": flag(pc.is_in(letters, value_set=_BOILERPLATE)),
        },
        schema=CAPTION_SCHEMA,
    )
    stats = {"rows": table.num_rows, "empty": int(pc.sum(pc.invert(present)).as_py() or 0)}
    for name in ("caption_is_filename", "caption_is_url", "caption_has_html", "caption_is_boilerplate"):
        stats[name.removeprefix("caption_")] = int(pc.sum(table.column(name)).as_py() or 0)
    return table, stats
