"""Caption NSFW score from the project's multilingual term list (curate/data/nsfw_terms.txt).

A caption's score is 1 - prod(1 - weight) over the distinct terms it contains: one explicit term
(weight 1.0) gives 1.0, two ambiguous ones (0.5 each) give 0.75, none gives 0.0.
Matching is case-insensitive (str.casefold) on whole words: captions are split into \\w+ words and
every term is looked up as a run of consecutive words, so "sex" matches "Sex!" but not "Sussex".
zh/ja/ko terms are matched as substrings (those scripts do not separate words with spaces).
"""

from __future__ import annotations

import functools
import importlib.resources
import re
from dataclasses import dataclass

from curate.errors import CurateError

SUBSTRING_LANGUAGES = frozenset({"zh", "ja", "ko"})
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class TermList:
    by_first_word: dict[str, list[tuple[tuple[str, ...], str, float]]]  # first word -> (words, term, weight)
    substrings: tuple[tuple[str, float], ...]
    size: int

    def match(self, text: str | None) -> tuple[float, list[str]]:
        """(score, matched terms in order of appearance) for one caption."""
        if not text:
            return 0.0, []
        folded = text.casefold()
        found: dict[str, float] = {}
        words = _WORD.findall(folded)
        for i, word in enumerate(words):
            for seq, term, weight in self.by_first_word.get(word, ()):
                if tuple(words[i : i + len(seq)]) == seq:
                    found.setdefault(term, weight)
        for term, weight in self.substrings:
            if term in folded:
                found.setdefault(term, weight)
        clean = 1.0
        for weight in found.values():
            clean *= 1.0 - weight
        return 1.0 - clean, list(found)


def parse_terms(lines: list[str], source: str) -> TermList:
    """Parse LANGUAGE<TAB>WEIGHT<TAB>TERM lines ('#' comments and blank lines ignored)."""
    by_first: dict[str, list[tuple[tuple[str, ...], str, float]]] = {}
    subs: dict[str, float] = {}
    seen: set[str] = set()
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.rstrip("\n").split("\t")
        try:
            lang, weight_text, term = parts
            weight = float(weight_text)
        except ValueError:
            raise CurateError(
                f"{source}:{number}: expected LANGUAGE<TAB>WEIGHT<TAB>TERM, got {line.strip()!r}"
            ) from None
        if not 0.0 < weight <= 1.0:
            raise CurateError(f"{source}:{number}: weight must be in (0, 1], got {weight}")
        term = term.strip().casefold()
        if term in seen:
            continue
        seen.add(term)
        if lang in SUBSTRING_LANGUAGES:
            subs[term] = weight
        else:
            words = tuple(_WORD.findall(term))
            by_first.setdefault(words[0], []).append((words, " ".join(words), weight))
    return TermList(by_first, tuple(subs.items()), len(seen))


@functools.lru_cache(maxsize=1)
def default_terms() -> TermList:
    resource = importlib.resources.files("curate").joinpath("data", "nsfw_terms.txt")
    return parse_terms(resource.read_text(encoding="utf-8").splitlines(), "curate/data/nsfw_terms.txt")
