"""Build curate/data/concept_entries.tsv.gz, the default entry list of the `concepts` signal.

    pip install wordfreq && python tools/build_concept_entries.py [--per-language 3000] [--skip 100]

Source: the `wordfreq` package (code Apache-2.0; word lists CC BY-SA 4.0, built by Robyn Speer from
Wikipedia, subtitles, news, books, web text and more), which ships its lists inside its wheel. For each
of its languages the script keeps the words ranked skip+1 .. skip+per_language: the most frequent
ones are function words ("the", "of", "的", "の") that name no concept and would make every caption
match something, so `no_concept` could never fire; a word in any language's top `skip` is left out of
all of them. Words without a letter (numbers, symbols) are left
out. The output is one `entry<TAB>language` per line, deterministic for a given wordfreq version.
Run at build time only: curate never imports wordfreq.
"""

from __future__ import annotations

import argparse
import gzip
import logging
import unicodedata
from pathlib import Path

log = logging.getLogger("build_concept_entries")

OUTPUT = Path(__file__).resolve().parent.parent / "curate" / "data" / "concept_entries.tsv.gz"


def has_letter(word: str) -> bool:
    return any(unicodedata.category(c).startswith("L") for c in word)


def build(per_language: int, skip: int) -> list[tuple[str, str]]:
    """(word, language) rows, English first then languages in code order, words by falling frequency.

    A word several languages share belongs to the first (curate keeps an entry once), so English comes
    first: loan words ("hotel", "pizza") are counted under it.
    """
    import wordfreq

    languages = sorted(wordfreq.available_languages(wordlist="best"), key=lambda code: (code != "en", code))
    # Function words of any language are left out of every language (web text mixes them: "a" and
    # "on" rank high in the Arabic list too).
    function_words = {w for lang in languages for w in wordfreq.top_n_list(lang, skip, wordlist="best")}
    rows = []
    for lang in languages:
        words = wordfreq.top_n_list(lang, skip + per_language * 2, wordlist="best")[skip:]
        kept = [w for w in words if has_letter(w) and "\t" not in w and w not in function_words][
            :per_language
        ]
        rows += [(w, lang) for w in kept]
        log.info("%s: %d words", lang, len(kept))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-language", type=int, default=3000)
    parser.add_argument("--skip", type=int, default=100, help="most frequent words left out per language")
    parser.add_argument("-o", "--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from importlib.metadata import version

    rows = build(args.per_language, args.skip)
    header = (
        f"# curate default concept entries: wordfreq {version('wordfreq')} 'best' lists, ranks "
        f"{args.skip + 1}..{args.skip + args.per_language} per language (letters only).\n"
        "# Word lists: wordfreq by Robyn Speer, CC BY-SA 4.0 (https://github.com/rspeer/wordfreq).\n"
    )
    body = "".join(f"{word}\t{lang}\n" for word, lang in rows)
    # mtime=0: the same lists give the same bytes
    args.output.write_bytes(gzip.compress((header + body).encode("utf-8"), compresslevel=9, mtime=0))
    print(f"{args.output}: {len(rows):,} entries in {len({lang for _, lang in rows})} languages")


if __name__ == "__main__":
    main()
