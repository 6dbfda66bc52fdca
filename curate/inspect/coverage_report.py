"""The coverage card (curate.inspect.coverage) as text for `curate stats` and as an HTML section with
a plot."""

from __future__ import annotations

from curate.extras import MissingExtraError
from curate.inspect.report_html import esc, img, png_uri, table

SHOWN = 10


def render_text(cards: dict | None) -> list[str]:
    """Lines for `curate stats`: one block per balanced recipe."""
    out = []
    for recipe, c in (cards or {}).items():
        out.append(
            f"coverage of recipe {recipe}: {c['samples_before']:,} -> {c['samples_after']:,} samples "
            f"by balancing; entries matched {c['matched_before']:,} -> {c['matched_after']:,} "
            f"of {c['entries']:,}"
        )
        out.append("  head (before -> after): " + _entries(c["top"]))
        out.append("  starved (fewest kept): " + _entries(c["starved"]))
        for key in ("entry_languages", "languages", "domains"):
            if c[key]:
                out.append(
                    f"  {key.replace('_', ' ')}: "
                    + ", ".join(
                        f"{g['group'] or '?'} {g['before']:,}->{g['after']:,}" for g in c[key][:SHOWN]
                    )
                )
        if c["targets"] is not None:
            zeros = [t["concept"] for t in c["targets"] if t["after"] == 0]
            out.append(
                f"  targets: {len(zeros)} of {len(c['targets'])} with no sample"
                + (f" ({', '.join(zeros[:20])}{', ...' if len(zeros) > 20 else ''})" if zeros else "")
            )
            out.append(
                "  fewest: "
                + ", ".join(f"{t['concept']} {t['before']}->{t['after']}" for t in c["targets"][:SHOWN])
            )
    return out


def _entries(rows: list[dict]) -> str:
    return ", ".join(f"{r['entry']} {r['before']:,}->{r['after']:,}" for r in rows[:SHOWN]) or "none"


def html(cards: dict | None) -> str:
    """The report's coverage section: curve plot, entry tables, groups and targets before/after."""
    parts = []
    for recipe, c in (cards or {}).items():
        parts.append(
            f"<h2>Concept coverage, recipe {esc(recipe)}</h2><p>Balancing kept {c['samples_after']:,} of "
            f"{c['samples_before']:,} samples; {c['matched_after']:,} of {c['matched_before']:,} matched "
            f"entries still have a sample ({c['entries']:,} entries listed).</p>"
        )
        try:
            parts.append(
                f"<figure>{img(png_uri(curve_plot(c['curve'], recipe)), 'entry counts by rank', 'plot')}"
                "</figure>"
            )
        except MissingExtraError:  # no matplotlib ([report] extra): the tables still say it all
            pass
        head = ["entry", "language", "before", "after", "p_e"]
        for title, key in (("Head entries", "top"), ("Starved entries", "starved")):
            parts.append(
                f"<h3>{title}</h3>"
                + table(
                    head,
                    [[r["entry"], r["lang"] or "", r["before"], r["after"], r["p"]] for r in c[key]],
                    numeric=(2, 3, 4),
                )
            )
        for title, key in (
            ("Entry languages", "entry_languages"),
            ("Caption languages", "languages"),
            ("Domains", "domains"),
        ):
            if c[key]:
                parts.append(
                    f"<h3>{title}</h3>"
                    + table(
                        ["", "before", "after"],
                        [[g["group"] or "?", g["before"], g["after"]] for g in c[key]],
                        numeric=(1, 2),
                    )
                )
        if c["targets"] is not None:
            parts.append(
                "<h3>Target concepts (fewest first)</h3>"
                + table(
                    ["concept", "before", "after"],
                    [[t["concept"], t["before"], t["after"]] for t in c["targets"]],
                    numeric=(1, 2),
                )
            )
    return "".join(parts)


def curve_plot(curve: dict, recipe: str) -> bytes:
    """Entry count against entry rank on log axes, before and after balancing."""
    from curate.inspect.report_plots import COLOUR, FIGSIZE, _png, _pyplot

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=FIGSIZE)
    for key, style in (("before", {"color": "#999999"}), ("after", {"color": COLOUR})):
        points = [(r, n) for r, n in zip(curve["rank"], curve[key], strict=True) if n > 0]
        if points:
            ax.plot(*zip(*points, strict=True), marker=".", label=f"{key} balancing", **style)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("entry rank")
    ax.set_ylabel("samples")
    ax.set_title(f"head/tail of entries: {recipe}", fontsize=9)
    ax.legend(fontsize=7)
    return _png(fig)
