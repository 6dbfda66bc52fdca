"""The dataset card's plots: matplotlib (Agg, no display) figures of `compute_stats` output, as PNG bytes.

Each plot takes only the stats dict, so the report never rescans the dataset to draw. Labels that come
from the data (hosts, languages, reasons) are drawn as pixels, never as HTML.
"""

from __future__ import annotations

import io

from curate.extras import require

FIGSIZE = (3.9, 2.6)
DPI = 96
COLOUR = "#3b6ea8"


def _pyplot():
    matplotlib = require("matplotlib", "report")
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=DPI)
    _pyplot().close(fig)
    return buf.getvalue()


def _bars(title: str, labels: list[str], counts: list[int], xlabel: str, horizontal: bool = False) -> bytes:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=FIGSIZE)
    labels = [label if len(label) <= 28 else label[:27] + "…" for label in labels]
    if horizontal:
        ax.barh(range(len(counts)), counts, color=COLOUR)
        ax.set_yticks(range(len(counts)), labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("samples")
    else:
        ax.bar(range(len(counts)), counts, color=COLOUR)
        ax.set_xticks(range(len(counts)), labels, rotation=35, ha="right", fontsize=8)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("samples")
    from matplotlib.ticker import MaxNLocator

    (ax.xaxis if horizontal else ax.yaxis).set_major_locator(MaxNLocator(integer=True))  # counts are whole
    ax.set_title(title, fontsize=10)
    ax.spines[["top", "right"]].set_visible(False)
    return _png(fig)


def _histogram(title: str, dist: dict | None, xlabel: str) -> bytes | None:
    if not dist or not dist["count"]:
        return None
    h = dist["histogram"]
    return _bars(title, h["labels"], h["counts"], xlabel)


def _top(title: str, counts: dict[str, int], limit: int = 12) -> bytes | None:
    items = list(counts.items())[:limit]
    if not items:
        return None
    return _bars(title, [str(k) for k, _ in items], [int(v) for _, v in items], "", horizontal=True)


def make_plots(stats: dict, recipe: str | None) -> dict[str, bytes]:
    """Plot name -> PNG for every section of `stats` that has data (ordered as the report shows them)."""
    plots: dict[str, bytes | None] = {}
    d = stats.get("download")
    if d:
        plots["download outcome"] = _top("download outcome", d["by_status"])
        plots["failures by class"] = _top("failures by error class", d["failures_by_class"])
        plots["top failing hosts"] = _top(
            "top failing hosts", {h["host"]: h["failed"] for h in d["top_failing_hosts"]}
        )
    images = stats.get("images")
    if images:
        plots["shorter side"] = _histogram("image shorter side (px)", images["shorter_side"], "pixels")
        plots["aspect ratio"] = _histogram("aspect ratio (long / short side)", images["aspect"], "ratio")
        plots["image bytes"] = _histogram("stored image size (bytes)", images["bytes"], "bytes")
    captions = stats.get("captions")
    if captions:
        plots["caption words"] = _histogram("caption length (words)", captions["words"], "words")
        plots["caption chars"] = _histogram("caption length (characters)", captions["chars"], "characters")
    lang = stats.get("language")
    if lang:
        plots["languages"] = _top("caption languages", {t["language"]: t["count"] for t in lang["top"]})
    nsfw = stats.get("nsfw")
    if nsfw:
        plots["nsfw image"] = _histogram("NSFW image score", nsfw["image"], "score")
        plots["nsfw text"] = _histogram("NSFW text score", nsfw["text"], "score")
    dup = stats.get("duplicates")
    if dup and dup["by_kind"]:
        plots["duplicates"] = _top("duplicates by kind", dup["by_kind"])
    if recipe and recipe in stats.get("recipes", {}):
        r = stats["recipes"][recipe]
        plots["drops by reason"] = _top(f"recipe {recipe}: drops by reason", r["drops_by_reason"])
    return {name: png for name, png in plots.items() if png}
