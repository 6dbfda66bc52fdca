"""clip_score: the image-text cosine of the `clip` signal is too low (LAION's and DataComp's filter).

`min_clip_score` is a fixed threshold (LAION-2B-en kept >= 0.28 with OpenAI ViT-B/32).
`clip_score_top_fraction` keeps the best-scored fraction of the pool (DataComp's "top 30%"): the pool is
every downloaded sample with a score, ranked by score (highest first, ties by uid so the cut is the same
on every run), independently of the other rules, as DataComp sets its threshold at the pool's quantile.
A sample without a score does not fire (like every rule whose input is null).
"""

from typing import ClassVar

from curate.filters.base import Filter, Settings

from curate.errors import CurateError

_SCORE = "CASE WHEN s.status = 'success' THEN clip.clip_score END"


class ClipScore(Filter):
    reason = "clip_score"
    settings: ClassVar[Settings] = {
        "min_clip_score": ((int, float), "drop samples whose image-text cosine is lower (LAION: 0.28)"),
        "clip_score_top_fraction": (
            (int, float),
            "keep this fraction of the scored pool, best first (DataComp: 0.3)",
        ),
    }
    needs = ("clip",)

    def drop_when(self) -> str:
        parts = []
        if "min_clip_score" in self.config:
            parts.append(f"clip.clip_score < {float(self.config['min_clip_score'])}")
        if "clip_score_top_fraction" in self.config:
            fraction = float(self.config["clip_score_top_fraction"])
            if not 0 < fraction <= 1:
                raise CurateError(
                    f"[filter] clip_score_top_fraction = {fraction} is not a fraction: give a number "
                    "in (0, 1], e.g. 0.3 to keep the best 30%"
                )
            rank = f"row_number() OVER (ORDER BY {_SCORE} DESC NULLS LAST, s.uid)"
            pool = f"count({_SCORE}) OVER ()"
            parts.append(f"({_SCORE} IS NOT NULL AND {rank} > ceil({fraction} * {pool}))")
        return "(" + " OR ".join(parts) + ")"
