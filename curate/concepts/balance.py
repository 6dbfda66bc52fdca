"""The recipe's [balance] table: MetaCLIP's concept balancing, the last step of curate.filter.

    [balance]
    max_per_entry = 20000        # t: OpenAI kept at most 20,000 pairs per query (MetaCLIP: 170,000 at 2.5B)
    # tail_fraction = 0.06       # or p: each language's t is the count below which that share of its
    #                            # matches lies (MetaCLIP 2's per-language rule)
    max_per_language = { de = 5000 }   # optional: t for some languages, overriding the above
    seed = 0

Counts c_e are taken over the samples that every other rule keeps (balancing is the last step), so a
threshold change elsewhere changes c_e. Entry e gets p_e = min(1, t / c_e); a sample with matched
entries E is kept with probability 1 - prod_{e in E} (1 - p_e). The draw is u = the first 52 bits of
md5(uid ":" seed) / 2^52, so a rerun (on any machine, any DuckDB) decides the same, and a
different seed draws anew. Samples without a matched entry get `no_concept`, drawn-out ones
`balanced_out`.

curate.filter runs the rules query once and hands its rows to Balance.decide: the pool's entry ids,
flat arrays of 10^7-10^8 integers, are counted and multiplied with NumPy per batch instead of unnested
into (sample, entry) rows to group and join; only samples with a keep probability below 1 are drawn.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curate import storage
from curate.dataset import Dataset
from curate.errors import CurateError
from curate.filters.base import literal
from curate.schema import CONCEPTS_SCHEMA

log = logging.getLogger(__name__)

KEYS = {
    "max_per_entry": "t: the most samples kept per entry in expectation (positive integer)",
    "tail_fraction": "p: share of each language's matches below its t, 0 < p < 1 (MetaCLIP 2)",
    "max_per_language": "table of language code = t, overriding the above for those languages",
    "seed": "integer seed of the deterministic draw (default 0)",
}
DRAW_BITS = 52  # 13 hex digits of md5: a double holds them exactly
NO_CONCEPT, BALANCED_OUT = 1, 2  # Balance.decide's verdicts
ID_LISTS = CONCEPTS_SCHEMA.field("concept_ids").type


@dataclass(frozen=True)
class Balance:
    max_per_entry: int | None = None
    tail_fraction: float | None = None
    max_per_language: dict[str, int] = field(default_factory=dict)
    seed: int = 0

    @classmethod
    def from_table(cls, table: Any, source: str) -> Balance:
        """Validate a [balance] table, naming the bad key and what it takes."""
        if not isinstance(table, dict):
            raise CurateError(f"recipe {source}: [balance] must be a table, got {type(table).__name__}")
        unknown = sorted(set(table) - set(KEYS))
        if unknown:
            raise CurateError(
                f"recipe {source}: unknown key(s) {unknown} in [balance]; valid keys: {', '.join(KEYS)}"
            )

        def bad(key: str) -> CurateError:
            return CurateError(f"recipe {source}: [balance] {key} must be {KEYS[key]}, got {table[key]!r}")

        t, p = table.get("max_per_entry"), table.get("tail_fraction")
        if (t is None) == (p is None):
            raise CurateError(
                f"recipe {source}: [balance] needs exactly one of max_per_entry (t) and tail_fraction (p)"
            )
        if t is not None and (isinstance(t, bool) or not isinstance(t, int) or t < 1):
            raise bad("max_per_entry")
        if p is not None and (isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 < p < 1):
            raise bad("tail_fraction")
        per_lang = table.get("max_per_language", {})
        if not isinstance(per_lang, dict) or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in per_lang.values()
        ):
            raise bad("max_per_language")
        seed = table.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise bad("seed")
        return cls(t, None if p is None else float(p), dict(per_lang), seed)

    # Decision -----------------------------------------------------------------------------------

    def entry_probabilities(self, counts: str) -> str:
        """A query of (id, lang, matched, t, p) for the entries in `counts` (a relation of (id, matched),
        matched > 0); needs the view `concept_entries` (id, lang)."""
        if self.tail_fraction is not None:  # MetaCLIP's p_to_t, per language
            thresholds = f"""SELECT lang, arg_min(matched, abs(portion - {self.tail_fraction!r})) AS t FROM (
                SELECT lang, matched, sum(matched) OVER (PARTITION BY lang ORDER BY matched, id
                       ROWS UNBOUNDED PRECEDING)::DOUBLE / sum(matched) OVER (PARTITION BY lang) AS portion
                FROM counted) GROUP BY lang"""
        else:
            thresholds = f"SELECT DISTINCT lang, {self.max_per_entry}::BIGINT AS t FROM counted"
        overrides = ", ".join(f"({literal(lang)}, {t}::BIGINT)" for lang, t in self.max_per_language.items())
        overrides = (
            f"VALUES {overrides}"
            if overrides
            else "SELECT NULL::VARCHAR AS lang, NULL::BIGINT AS t WHERE false"
        )
        return f"""WITH counted AS (
                SELECT n.id, coalesce(e.lang, '') AS lang, n.matched
                FROM {counts} n JOIN concept_entries e USING (id)),
            thresholds AS ({thresholds}),
            overrides(lang, t) AS ({overrides})
            SELECT c.id, c.lang, c.matched, coalesce(o.t, th.t) AS t,
                   least(1.0, coalesce(o.t, th.t)::DOUBLE / c.matched) AS p
            FROM counted c JOIN thresholds th USING (lang) LEFT JOIN overrides o USING (lang)"""

    def draw(self, uid: str) -> str:
        """SQL for the sample's uniform draw in [0, 1)."""
        return f"('0x' || md5({uid} || ':{self.seed}')[1:{DRAW_BITS // 4}])::BIGINT / {2.0**DRAW_BITS!r}"

    @staticmethod
    def pool(rules: str) -> str:
        """The rules query (uid, reasons, missing, concept_ids) with what balancing reads: `no_concept`
        (the caption names no entry), and `concept_ids` only for the pool (the samples no rule drops)."""
        return f"""SELECT uid, reasons, missing, coalesce(len(concept_ids), 0) = 0 AS no_concept,
                          CASE WHEN len(reasons) = 0 THEN concept_ids END AS concept_ids
                   FROM ({rules})"""

    def decide(self, con, rows: pa.Table) -> tuple[pa.Table, pa.Table]:
        """Balance the pool query's rows: (uid, reasons, missing, verdict) for `with_reasons`, and the
        per-entry report (id, entry, lang, matched, t, p, kept) ordered by id.

        The pool's entry ids are read as flat arrays, never as (sample, entry) rows to group or join:
        c_e is a bincount, each sample's 1 - prod(1 - p_e) a product over its slice. Only samples whose
        keep probability is below 1 (every entry over-full) are drawn, and kept per entry is c_e less
        the entries of the samples drawn out.
        """
        lists = rows.column("concept_ids").chunks  # DuckDB's batches: temporaries stay in cache
        counts = entry_counts([ids.flatten().to_numpy() for ids in lists])
        probs = self._probabilities(con, counts)
        p = np.ones(len(counts))
        p[probs.column("id").to_numpy()] = probs.column("p").to_numpy()
        over = p < 1.0
        q = np.concatenate([np.ones(0)] + [keep_probabilities(ids, p, over) for ids in lists])
        drawn = np.flatnonzero(q < 1.0)
        con.register("drawn", pa.table({"uid": take_sorted(rows.column("uid"), drawn)}))
        u = con.sql(f"SELECT {self.draw('uid')} AS u FROM drawn").to_arrow_table().column("u").to_numpy()
        con.unregister("drawn")
        out = drawn[u >= q[drawn]]

        verdict = np.where(rows.column("no_concept").to_numpy(), NO_CONCEPT, 0).astype(np.int8)
        verdict[out] = BALANCED_OUT
        decided = rows.select(["uid", "reasons", "missing"]).append_column("verdict", pa.array(verdict))
        lost = entry_counts(
            [ids.flatten().to_numpy() for ids in take_sorted(rows.column("concept_ids"), out).chunks]
        )
        kept = counts.copy()
        kept[: len(lost)] -= lost
        return decided, _report(con, probs, kept)

    def _probabilities(self, con, counts: np.ndarray) -> pa.Table:
        """(id, lang, matched, t, p) of the entries with counts[id] > 0."""
        present = np.flatnonzero(counts).astype(np.int32)
        con.register("entry_counts", pa.table({"id": present, "matched": counts[present]}))
        probs = con.sql(self.entry_probabilities("entry_counts")).to_arrow_table()
        con.unregister("entry_counts")
        return probs


def with_pool_concepts(rows: pa.Table, signal_files: list[str]) -> pa.Table:
    """`rows` (uid, reasons, missing) in shard order, with the columns `Balance.pool` would add, read from
    concepts files aligned with the shards row for row: Arrow reads the lists directly (the files in
    parallel, chunks kept), where DuckDB would convert 10^7-10^8 entry ids into its own lists and back."""
    if signal_files:
        fs, _ = storage.url_to_fs(signal_files[0])
        inner = [storage.url_to_fs(f)[1] for f in signal_files]
        ids = pq.read_table(inner, columns=["concept_ids"], filesystem=fs).column(0)
    else:
        ids = pa.chunked_array([], ID_LISTS)
    in_pool = pc.list_value_length(rows.column("reasons")).to_numpy() == 0
    pool_ids, start = [], 0
    for chunk in ids.chunks:  # lists of samples some rule drops become nulls, as in Balance.pool
        outside = pa.array(~in_pool[start : start + len(chunk)])
        offsets = pa.array(chunk.offsets.to_numpy())  # unsliced: from_arrays takes no mask with a slice
        pool_ids.append(
            pa.ListArray.from_arrays(offsets, chunk.values, mask=pc.or_(outside, chunk.is_null()))
        )
        start += len(chunk)
    return rows.append_column(
        "no_concept", pc.equal(pc.fill_null(pc.list_value_length(ids), 0), 0)
    ).append_column("concept_ids", pa.chunked_array(pool_ids, type=ID_LISTS))


def _report(con, probs: pa.Table, kept: np.ndarray) -> pa.Table:
    """Every entry of `concept_entries` with its c_e, t, p_e (1 where nothing matched) and kept count."""
    con.register("probs", probs)
    con.register("kept_counts", pa.table({"id": np.arange(len(kept), dtype=np.int32), "kept": kept}))
    report = con.sql("""
        SELECT e.id, e.entry, e.lang, coalesce(p.matched, 0) AS matched, p.t, coalesce(p.p, 1.0) AS p,
               coalesce(k.kept, 0) AS kept
        FROM concept_entries e LEFT JOIN probs p USING (id) LEFT JOIN kept_counts k USING (id)
        ORDER BY e.id""").to_arrow_table()
    con.unregister("probs")
    con.unregister("kept_counts")
    return report


def take_sorted(column: pa.ChunkedArray, rows: np.ndarray) -> pa.ChunkedArray:
    """column[rows] for ascending row numbers, chunk by chunk: ChunkedArray.take would first copy every
    chunk into one array (10^7 uids, 10^8 entry ids) to take a few of them."""
    lengths = np.array([len(chunk) for chunk in column.chunks], dtype=np.int64)
    ends = np.cumsum(lengths)
    cuts = np.searchsorted(rows, ends)
    pieces, lo = [], 0
    for chunk, start, hi in zip(column.chunks, ends - lengths, cuts, strict=True):
        if hi > lo:
            pieces.append(chunk.take(pa.array(rows[lo:hi] - start)))
        lo = hi
    return pa.chunked_array(pieces, type=column.type)


def entry_counts(arrays: list[np.ndarray]) -> np.ndarray:
    """counts[id]: how often each id occurs in the arrays."""
    counts = np.zeros(0, np.int64)
    for values in arrays:
        found = np.bincount(values)
        if len(found) > len(counts):
            found[: len(counts)] += counts
            counts = found
        else:
            counts[: len(found)] += found
    return counts


def keep_probabilities(ids: pa.ListArray, p: np.ndarray, over: np.ndarray) -> np.ndarray:
    """Per list of entry ids, 1 - prod(1 - p_e) over its entries; 1 for none (or a null list).

    over = p < 1 (the over-full entries). One entry with p_e = 1 makes the probability 1, so a pass over
    booleans finds the lists of over-full entries only, and the product is taken over those few."""
    lengths = pc.fill_null(pc.list_value_length(ids), 0).to_numpy()
    q = np.ones(len(lengths))
    nonempty = np.flatnonzero(lengths)
    if len(nonempty):
        starts = (np.cumsum(lengths) - lengths)[nonempty]
        full = nonempty[np.logical_and.reduceat(over[ids.flatten().to_numpy()], starts)]
        if len(full):
            chosen = ids.take(full)
            sizes = pc.list_value_length(chosen).to_numpy()
            factors = (1.0 - p)[chosen.flatten().to_numpy()]
            q[full] = 1.0 - np.multiply.reduceat(factors, np.cumsum(sizes) - sizes)
    return q


def with_reasons(relation: str) -> str:
    """SQL: `relation`'s (uid, reasons, missing, verdict) rows, the verdict appended to the reasons."""
    return f"""SELECT uid, CASE verdict WHEN {NO_CONCEPT} THEN list_append(reasons, 'no_concept')
                               WHEN {BALANCED_OUT} THEN list_append(reasons, 'balanced_out')
                               ELSE reasons END AS reasons, missing
               FROM {relation}"""


def from_recipe(raw: dict[str, Any], source: str) -> Balance | None:
    """The recipe's balance settings, or None when it has no [balance] table."""
    return Balance.from_table(raw["balance"], source) if "balance" in raw else None


def report_path(dataset: str, recipe_name: str) -> str:
    """DATASET/decisions/_balance/<recipe>.parquet: a sub-folder, so the decisions view never reads it."""
    return storage.join(Dataset(dataset).decisions_dir, "_balance", f"{recipe_name}.parquet")


def register_entries(con, ds: Dataset, signal_files: list[str]) -> str:
    """View `concept_entries` (id, entry, lang); every concepts file must come from the same list (an
    empty one matched nothing, so files of empty shards written without the list's sha256 pass)."""
    from curate.annotate.concepts import SHA_KEY, entries_table_path

    path = entries_table_path(ds)
    if not storage.exists(path):
        raise CurateError(f"{path} is missing: run `curate annotate {ds.root} --signals concepts` first")
    entries = storage.read_parquet(path)
    sha = (entries.schema.metadata or {}).get(SHA_KEY, b"").decode()
    for file in signal_files:
        fs, inner = storage.url_to_fs(file)
        with fs.open(inner, "rb") as fh:
            meta = pq.read_metadata(fh)
        got = (meta.schema.to_arrow_schema().metadata or {}).get(SHA_KEY, b"").decode()
        if got != sha and meta.num_rows > 0:
            raise CurateError(
                f"{file} matched another entry list (sha256 {got[:12] or '?'}, the dataset's is "
                f"{sha[:12]}): rerun `curate annotate {ds.root} --signals concepts` with one list"
            )
    con.register("concept_entries", entries)
    return sha


def explain(dataset: str, concept_ids: list[int] | None) -> dict | None:
    """For `curate why`: the sample's entries, and per balanced recipe each entry's c_e and p_e and the
    sample's keep probability 1 - prod(1 - p_e) (it applies when every other rule keeps the sample)."""
    if concept_ids is None:
        return None
    from curate.annotate.concepts import entries_table_path

    ds = Dataset(dataset)
    ids = pa.array(sorted(set(concept_ids)), pa.int32())

    def rows(path: str, columns: list[str]) -> list[dict]:
        table = storage.read_parquet(path, columns=["id", *columns])
        return table.filter(pc.is_in(table.column("id"), value_set=ids)).select(columns).to_pylist()

    path = entries_table_path(ds)
    recipes = {}
    for report in storage.list_files(storage.join(ds.decisions_dir, "_balance"), ".parquet"):
        found = sorted(rows(report, ["entry", "lang", "matched", "t", "p"]), key=lambda r: r["p"])
        recipes[report.rpartition("/")[2].removesuffix(".parquet")] = {
            "keep_probability": round(1.0 - math.prod(1.0 - r["p"] for r in found), 6) if found else 0.0,
            "entries": found,
        }
    return {"entries": rows(path, ["entry", "lang"]) if storage.exists(path) else [], "recipes": recipes}
