"""Filters: one module per decision rule over stored signals (installed as curate.filters).

Each filter has a stable public `reason` (curate.schema.DROP_REASONS) and turns its [filter] recipe
settings into a DuckDB "drop when" expression; curate.decide runs them all in one query.
"""

from __future__ import annotations

from typing import Any

from curate.filters.alt_text_too_short import AltTextTooShort
from curate.filters.aspect_ratio import AspectRatio
from curate.filters.base import Filter
from curate.filters.benchmark_overlap import BenchmarkOverlap
from curate.filters.blank_image import BlankImage
from curate.filters.body_too_small import BodyTooSmall
from curate.filters.caption_boilerplate import CaptionBoilerplate
from curate.filters.caption_too_short import CaptionTooShort
from curate.filters.clip_score import ClipScore
from curate.filters.domain_too_long import DomainTooLong
from curate.filters.download_failed import DownloadFailed
from curate.filters.exact_duplicate import ExactDuplicate
from curate.filters.image_format import ImageFormat
from curate.filters.image_too_small import ImageTooSmall
from curate.filters.language import Language
from curate.filters.near_duplicate import NearDuplicate
from curate.filters.nsfw_image import NsfwImage
from curate.filters.nsfw_text import NsfwText
from curate.filters.opted_out import OptedOut
from curate.filters.semantic_duplicate import SemanticDuplicate
from curate.filters.takedown import Takedown
from curate.filters.url_pattern import UrlPattern

from curate.errors import CurateError

# In curate.schema.DROP_REASONS order (tests keep the two in sync).
FILTERS: tuple[type[Filter], ...] = (
    DownloadFailed, OptedOut, Takedown, UrlPattern, DomainTooLong, BodyTooSmall, ImageFormat, ImageTooSmall,
    AspectRatio, BlankImage, CaptionTooShort, AltTextTooShort,
    CaptionBoilerplate, Language, NsfwImage, NsfwText, ExactDuplicate, NearDuplicate, SemanticDuplicate,
    BenchmarkOverlap, ClipScore,
)


def valid_keys() -> dict[str, tuple]:
    """Every [filter] key of every filter: key -> (type, help)."""
    return {key: spec for f in FILTERS for key, spec in f.settings.items()}


def validate_settings(table: dict[str, Any], source: str) -> None:
    """Reject unknown [filter] keys (naming the valid ones) and values of the wrong type."""
    keys = valid_keys()
    unknown = sorted(set(table) - set(keys))
    if unknown:
        raise CurateError(f"recipe {source}: unknown key(s) {unknown} in [filter]; valid keys: {', '.join(keys)}")
    for key, value in table.items():
        kind = keys[key][0]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            names = " or ".join(k.__name__ for k in kinds)
            raise CurateError(f"recipe {source}: [filter] {key} must be {names} ({keys[key][1]}), got {value!r}")


def build(settings: dict[str, Any]) -> list[Filter]:
    """The filters a recipe's [filter] table activates, always-on ones included."""
    return [f for f in (cls(settings) for cls in FILTERS) if f.active]
