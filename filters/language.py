"""language: the caption's detected language is not kept, or detection is not confident enough."""

from typing import ClassVar

from curate.filters.base import Filter, Settings, literal

from curate.errors import CurateError


class Language(Filter):
    reason = "language"
    settings: ClassVar[Settings] = {
        "languages": (list, 'ISO 639-1 codes to keep, e.g. ["en"]'),
        "min_language_score": ((int, float), "drop captions whose language confidence is lower"),
    }
    needs = ("language",)

    def drop_when(self) -> str:
        parts = []
        if "languages" in self.config:
            codes = [str(c).lower() for c in self.config["languages"]]
            if not codes:
                raise CurateError('[filter] languages is empty: list the ISO codes to keep, e.g. ["en"]')
            parts.append(
                f"coalesce(lower(language.language), '') NOT IN ({', '.join(literal(c) for c in codes)})"
            )
        if "min_language_score" in self.config:
            parts.append(f"coalesce(language.language_score, 0) < {float(self.config['min_language_score'])}")
        return "(" + " OR ".join(parts) + ")"
