"""Caption signal rules: counts and the file-name / URL / HTML / boilerplate flags."""

from __future__ import annotations

import pyarrow as pa

from curate.annotate.caption_signals import CAPTION_SCHEMA, caption_signal
from curate.annotate.options import Options

FLAGS = ("caption_is_filename", "caption_is_url", "caption_has_html", "caption_is_boilerplate")

CASES = [  # caption, chars, words, set of flags that are true
    ("a dog running on the beach at sunset", 36, 8, set()),
    ("  padded caption  ", 14, 2, set()),
    (None, 0, 0, set()),
    ("", 0, 0, set()),
    ("IMG_1234.jpg", 12, 1, {"caption_is_filename", "caption_is_boilerplate"}),
    ("DSC01234", 8, 1, {"caption_is_boilerplate"}),
    ("holiday in Rome.JPEG", 20, 3, {"caption_is_filename"}),
    ("https://example.com/a/b.jpg?x=1", 31, 1, {"caption_is_url"}),
    ("www.shop.example.org", 20, 1, {"caption_is_url"}),
    ("example.com/products", 20, 1, {"caption_is_url"}),
    ("visit example.com for more", 26, 4, set()),
    ("<p>red shoes</p>", 16, 2, {"caption_has_html"}),
    ("Tom &amp; Jerry", 15, 3, {"caption_has_html"}),
    ("2 < 3 and 5 > 4", 15, 7, set()),
    ("Image", 5, 1, {"caption_is_boilerplate"}),
    ("photo 12", 8, 2, {"caption_is_boilerplate"}),
    ("Untitled-3", 10, 1, {"caption_is_boilerplate"}),
    ("Click to enlarge", 16, 3, {"caption_is_boilerplate"}),
    ("123456", 6, 1, {"caption_is_boilerplate"}),
    ("image of a cat on a sofa", 24, 7, set()),
    ("海滩上的一只狗", 7, 1, set()),
]


def test_caption_rules():
    captions = [c[0] for c in CASES]
    table, stats = caption_signal(
        pa.table({"uid": [str(i) for i in range(len(CASES))], "caption": captions}), Options()
    )
    assert table.schema == CAPTION_SCHEMA
    for (caption, chars, words, flags), row in zip(CASES, table.to_pylist(), strict=False):
        assert (row["caption_chars"], row["caption_words"]) == (chars, words), caption
        assert {f for f in FLAGS if row[f]} == flags, caption
    assert stats["empty"] == 2 and stats["is_boilerplate"] == 7 and stats["is_url"] == 3


def test_empty_batch_gives_an_empty_table_with_the_schema():
    table, stats = caption_signal(
        pa.table({"uid": pa.array([], pa.string()), "caption": pa.array([], pa.string())}), Options()
    )
    assert table.num_rows == 0 and table.schema == CAPTION_SCHEMA and stats["rows"] == 0
