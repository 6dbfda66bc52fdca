"""`build_report`: one self-contained HTML page, the dataset card (docs/FORMAT.md#inspect).

The page holds the stats as plots, a gallery of kept samples, a gallery per drop reason, duplicate
clusters side by side and benchmark matches beside their eval image. Everything is inline (CSS, PNG
plots, JPEG thumbnails as data: URIs), so it opens offline; no text from the data can run script
(see curate.inspect.report_html).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import duckdb

from curate import __version__, publish, storage
from curate.errors import CurateError
from curate.inspect import coverage_report, sql
from curate.inspect.report_evals import benchmark_paths, eval_images
from curate.inspect.report_html import card, esc, img, page, png_uri, table, thumbnail
from curate.inspect.report_plots import make_plots
from curate.inspect.stats import compute_stats
from curate.takedown import purge

log = logging.getLogger(__name__)

REASON_SQL = "list_transform(reasons, lambda r: split_part(r, ':', 1))"


def build_report(
    dataset: str,
    output: str,
    recipe: str | None = None,
    *,
    kept: int = 24,
    per_reason: int = 8,
    clusters: int = 8,
    matches: int = 12,
    targets: str | None = None,
) -> dict:
    """Write the report for `dataset` (galleries for `recipe`, default: the first decided) to `output`.

    `output` is replaced only when it is an earlier report (curate.publish) and never inside the dataset's
    data.
    """
    publish.check_file_replaceable(output, "report", dataset)
    stats = compute_stats(dataset, targets=targets)
    if recipe is None and stats["recipes"]:
        recipe = min(stats["recipes"])
    if recipe is not None and recipe not in stats["recipes"]:
        raise CurateError(
            f"recipe {recipe!r} has no decisions in {dataset}: run `curate filter {dataset} --recipe "
            f"{recipe}` first (decided: {', '.join(stats['recipes']) or 'none'})"
        )
    con, _ = sql.open_views(dataset, trusted=True)  # only the queries below
    try:
        galleries = _Galleries(con, dataset, recipe)
        plots = make_plots(stats, recipe)
        sections = [
            _summary(stats, recipe),
            _plots(plots),
            coverage_report.html(stats["coverage"]),
            galleries.kept(kept),
            galleries.by_reason(stats["recipes"].get(recipe, {}).get("drops_by_reason", {}), per_reason),
            galleries.duplicates(clusters),
            galleries.matches(stats["overlap"] or {}, matches),
            _failures(stats["download"]),
        ]
        thumbs = galleries.thumbnails_made
    finally:
        sql.close(con)
    title = f"curate dataset report: {dataset}"
    generated = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    head = (
        f'<h1>{esc(title)}</h1><p class="muted">generated {esc(generated)} by curate {esc(__version__)}'
        + (f"; galleries for recipe <b>{esc(recipe)}</b>" if recipe else "")
        + "</p>"
    )
    document = page(title, head + "".join(s for s in sections if s))
    storage.write_bytes_atomic(document.encode("utf-8"), output)
    # Recorded with its arguments: a takedown writes it again.
    purge.register(
        dataset,
        "report",
        output,
        recipe=recipe,
        kept=kept,
        per_reason=per_reason,
        clusters=clusters,
        matches=matches,
        targets=targets,
    )
    log.info("report: %s (%d bytes, %d thumbnails)", output, len(document), thumbs)
    return {
        "output": output,
        "bytes": len(document),
        "plots": len(plots),
        "thumbnails": thumbs,
        "recipe": recipe,
    }


def _summary(stats: dict, recipe: str | None) -> str:
    rows: list[list[Any]] = []
    if stats["manifest"]:
        rows.append(["manifest rows", stats["manifest"]["rows"]])
    d = stats["download"]
    if d:
        rows += [
            ["downloaded", d["by_status"].get("success", 0)],
            ["download success rate", f"{100 * (d['success_rate'] or 0):.1f}%"],
        ]
    if stats["duplicates"]:
        dup = stats["duplicates"]
        rows.append(["duplicates", f"{dup['duplicates']:,} ({100 * (dup['rate'] or 0):.1f}%)"])
    if stats["language"]:
        top = stats["language"]["top"][0]
        rows.append(["main language", f"{top['language']} ({100 * (top['share'] or 0):.1f}%)"])
    for bench, o in (stats["overlap"] or {}).items():
        pct = "n/a" if o["overlap_pct"] is None else f"{o['overlap_pct']:.2f}%"
        rows.append([f"overlap with {bench}", f"{o['eval_images_matched']:,} eval images ({pct})"])
    for name, r in stats["recipes"].items():
        rows.append(
            [
                f"recipe {name}: kept",
                f"{r['kept']:,} of {r['samples']:,} ({100 * (r['kept_rate'] or 0):.1f}%)",
            ]
        )
    html = "<h2>Summary</h2>" + table(["", ""], rows)
    if recipe:
        r = stats["recipes"][recipe]
        html += f"<h3>Drops by reason, recipe {esc(recipe)}</h3>" + table(
            ["reason", "samples", "for this reason alone"],
            [[k, v, r["drops_by_reason_alone"][k]] for k, v in r["drops_by_reason"].items()],
            numeric=(1, 2),
        )
    return html


def _plots(plots: dict[str, bytes]) -> str:
    if not plots:
        return ""
    figures = "".join(f"<figure>{img(png_uri(png), name, 'plot')}</figure>" for name, png in plots.items())
    return f'<h2>Distributions</h2><div class="plots">{figures}</div>'


def _failures(d: dict | None) -> str:
    if not d or not d["failures_by_class"]:
        return ""
    html = "<h2>Download failures</h2>" + table(
        ["error class", "rows"], [[k, v] for k, v in d["failures_by_class"].items()], numeric=(1,)
    )
    hosts = [
        [h["host"], h["failed"], h["rows"], f"{100 * (h['failure_rate'] or 0):.0f}%", h["main_error"]]
        for h in d["top_failing_hosts"]
    ]
    return (
        html
        + "<h3>Top failing hosts</h3>"
        + table(["host", "failed", "rows", "failure rate", "main error"], hosts, numeric=(1, 2))
    )


class _Galleries:
    """Picks samples with small queries, then fetches only their image bytes."""

    def __init__(self, con: duckdb.DuckDBPyConnection, dataset: str, recipe: str | None) -> None:
        self.con, self.dataset, self.recipe = con, dataset, recipe
        self.thumbnails_made = 0

    def _rows(self, query: str, *params: Any) -> list[dict]:
        return self.con.sql(query, params=list(params)).to_arrow_table().to_pylist()

    def _thumbs(self, uids: list[str]) -> dict[str, str | None]:
        if not uids:
            return {}
        rows = self._rows(
            "SELECT uid, image FROM images WHERE status = 'success' AND uid IN (SELECT unnest(?))",
            sorted(set(uids)),
        )
        out = {r["uid"]: thumbnail(r["image"]) for r in rows}
        self.thumbnails_made += sum(1 for v in out.values() if v)
        return out

    def kept(self, n: int) -> str:
        if self.recipe:
            rows = self._rows(
                """SELECT s.uid, s.url, s.caption FROM decisions d JOIN samples s USING (uid)
                   WHERE d.recipe = ? AND d.keep AND s.status = 'success' ORDER BY s.uid LIMIT ?""",
                self.recipe,
                n,
            )
            title = f"Kept samples (recipe {esc(self.recipe)})"
        else:
            rows = self._rows(
                "SELECT uid, url, caption FROM samples WHERE status = 'success' ORDER BY uid LIMIT ?", n
            )
            title = "Downloaded samples (no recipe applied yet)"
        if not rows:
            return f'<h2>{title}</h2><p class="muted">none</p>'
        thumbs = self._thumbs([r["uid"] for r in rows])
        cards = "".join(card(thumbs.get(r["uid"]), r) for r in rows)
        return f'<h2>{title}</h2><div class="gallery">{cards}</div>'

    def by_reason(self, reasons: dict[str, int], n: int) -> str:
        if not self.recipe or not reasons:
            return ""
        parts = [f"<h2>Dropped samples by reason (recipe {esc(self.recipe)})</h2>"]
        for reason, count in reasons.items():
            rows = self._rows(
                f"""SELECT d.uid, d.reasons, s.url, s.caption, s.status, s.error_class
                                  FROM decisions d LEFT JOIN samples s USING (uid)
                                  WHERE d.recipe = ? AND NOT d.keep AND list_contains({REASON_SQL}, ?)
                                  ORDER BY d.uid LIMIT ?""",
                self.recipe,
                reason,
                n,
            )
            thumbs = self._thumbs([r["uid"] for r in rows])
            cards = []
            for r in rows:
                why = ", ".join(r["reasons"] or [])
                if r["status"] not in (None, "success"):
                    why += f" ({r['status']}: {r['error_class'] or 'unknown'})"
                cards.append(card(thumbs.get(r["uid"]), r, f'<div class="why">{esc(why)}</div>'))
            parts.append(
                f'<h3>{esc(reason)}: {count:,} sample(s)</h3><div class="gallery">{"".join(cards)}</div>'
            )
        return "".join(parts)

    def duplicates(self, n: int, members: int = 6) -> str:
        rows = self._rows(
            """WITH big AS (SELECT cluster_id, count(*) AS size FROM clusters GROUP BY 1 HAVING size > 1
                                          ORDER BY size DESC, cluster_id LIMIT ?),
                                 m AS (SELECT c.*, big.size, row_number() OVER (PARTITION BY c.cluster_id
                                              ORDER BY c.is_representative DESC, c.uid) AS k
                                       FROM clusters c JOIN big USING (cluster_id))
                             SELECT m.uid, m.cluster_id, m.size, m.is_representative, m.duplicate_kind,
                                    m.distance_to_representative, s.url, s.caption
                             FROM m LEFT JOIN samples s USING (uid) WHERE k <= ?
                             ORDER BY m.size DESC, m.cluster_id, k""",
            n,
            members,
        )
        if not rows:
            return ""
        thumbs = self._thumbs([r["uid"] for r in rows])
        out, current = ["<h2>Duplicate clusters (largest first; representative on the left)</h2>"], None
        for r in rows:
            if r["cluster_id"] != current:
                if current is not None:
                    out.append("</div>")
                current = r["cluster_id"]
                out.append(
                    f'<div class="row"><div class="muted">cluster {esc(current)}<br>'
                    f"{esc(r['size'])} samples</div>"
                )
            role = (
                "representative"
                if r["is_representative"]
                else (f"{r['duplicate_kind']} duplicate, distance {r['distance_to_representative']}")
            )
            out.append(card(thumbs.get(r["uid"]), r, f'<div class="why">{esc(role)}</div>'))
        return "".join(out) + "</div>"

    def matches(self, overlap: dict, n: int) -> str:
        if not overlap:
            return ""
        summary = table(
            ["benchmark", "eval images", "matched", "overlap %", "training samples flagged"],
            [
                [
                    b,
                    o["eval_images"],
                    o["eval_images_matched"],
                    o["overlap_pct"],
                    o["training_samples_flagged"],
                ]
                for b, o in overlap.items()
            ],
            numeric=(1, 2, 3, 4),
        )
        rows = self._rows(
            """SELECT o.uid, o.benchmark, o.eval_id, o.distance, o.match_kind, s.url, s.caption
               FROM overlap o LEFT JOIN samples s USING (uid) ORDER BY o.benchmark, o.eval_id, o.uid
               LIMIT ?""",
            n,
        )
        thumbs = self._thumbs([r["uid"] for r in rows])
        paths = benchmark_paths(self.dataset)
        evals: dict[tuple[str, str], str | None] = {}
        for bench in {r["benchmark"] for r in rows}:
            ids = sorted({r["eval_id"] for r in rows if r["benchmark"] == bench})
            found = eval_images(paths[bench], ids) if bench in paths else {}
            evals.update({(bench, i): thumbnail(data) for i, data in found.items()})
        self.thumbnails_made += sum(1 for v in evals.values() if v)
        pairs = []
        for r in rows:
            distance = "" if r["distance"] is None else f", distance {r['distance']}"
            match = f'<div class="why">{esc(r["match_kind"])} match{esc(distance)}</div>'
            eval_card = (
                f'<div class="card">{img(evals.get((r["benchmark"], r["eval_id"])), "eval image")}'
                f"<div>eval image {esc(r['benchmark'])}/{esc(r['eval_id'])}</div></div>"
            )
            pairs.append(f'<div class="row">{card(thumbs.get(r["uid"]), r, match)}{eval_card}</div>')
        return "<h2>Benchmark overlap (training sample, then the eval image)</h2>" + summary + "".join(pairs)
