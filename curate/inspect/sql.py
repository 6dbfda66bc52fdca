"""DuckDB views over a dataset folder (local or fsspec URL), opened read-only.

`connect(dataset)` returns a DuckDB connection with one view per part of the dataset (docs/FORMAT.md,
section "inspect"). A part that has not been built yet (no overlap run, no recipe applied) is an EMPTY
view with its documented columns, so that queries and notebooks written for a finished dataset run on
a partial one; `describe()` says which views have no files and which command makes them.

Read-only: dataset files are served to DuckDB through `curate.inspect.readonly_fs` (every write raises,
every path outside the dataset's root is refused), DuckDB spills into a private temporary folder instead of
`<cwd>/.tmp`, and external access is then switched off and the configuration locked, so a query can read
the dataset and nothing else, and can write nowhere (no COPY TO, ATTACH, INSTALL or LOAD).
"""

from __future__ import annotations

import contextlib
import logging
import re
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa

from curate import storage
from curate.dataset import Dataset
from curate.errors import CurateError
from curate.inspect import duck
from curate.inspect.readonly_fs import PROTOCOL, ReadOnlyFileSystem
from curate.schema import (
    CLUSTERS_SCHEMA,
    DECISIONS_SCHEMA,
    EVAL_SCHEMA,
    MANIFEST_SCHEMA,
    MATCHES_SCHEMA,
    OPT_IN_SIGNALS,
    SHARD_SCHEMA,
    SIGNAL_NAMES,
    SIGNAL_SCHEMAS,
    TAKEDOWN_SCHEMA,
)
from curate.urls import install_url_host

log = logging.getLogger(__name__)

# The signal sets `curate annotate` writes by default: one that is absent still contributes its documented
# columns (all NULL) to the `signals` view, so queries written for a finished dataset run on a partial one.
SIGNAL_SETS: dict[str, pa.Schema] = {
    name: SIGNAL_SCHEMAS[name].remove(SIGNAL_SCHEMAS[name].get_field_index("uid"))
    for name in SIGNAL_NAMES
    if name not in OPT_IN_SIGNALS
}
# Folders under signals/ that hold global (not per-shard) outputs with their own views.
GLOBAL_SIGNALS = ("dedup", "overlap")
# The eval-image view adds the benchmark (from the file name) to overlap's per-eval flags.
EVALS_SCHEMA = pa.schema([("benchmark", pa.string()), *EVAL_SCHEMA])


_EXPLAIN = re.compile(r"^\s*EXPLAIN\s+(?:ANALY[SZ]E\s+)?(?:\([^)]*\)\s*)?", re.IGNORECASE)
_FILE_COL = "curate_file"  # the file-name column DuckDB adds; a name no dataset column uses
_KEY = rf"regexp_extract({_FILE_COL}, '([^/]+?)(\.eval)?\.parquet$', 1)"


@dataclass
class ViewInfo:
    """One view: what it shows, its columns, and how many files back it (0: empty, `fix` builds it)."""

    name: str
    description: str
    files: int
    fix: str
    columns: list[tuple[str, str]] = field(default_factory=list)


_DESCRIPTIONS = {
    "manifest": ("manifest rows: uid, url, caption, status, source columns", "curate manifest"),
    "samples": (
        "download shards without image bytes (one row per manifest row, failures included)",
        "curate download",
    ),
    "images": (
        "download shards with the image bytes (slow: select only the rows you need)",
        "curate download",
    ),
    "signals": ("all per-sample signals joined on uid", "curate annotate"),
    "clusters": ("duplicate clusters: representative and duplicate kind per sample", "curate dedup"),
    "overlap": ("training samples matching a benchmark image or caption", "curate overlap"),
    "eval_images": (
        "benchmark eval images overlap searched for, with their overlapping flag",
        "curate overlap",
    ),
    "decisions": ("keep/drop and reasons per uid, one row per uid and recipe", "curate filter"),
    "takedowns": ("consent requests honoured", "curate takedown"),
}
VIEW_NAMES = tuple(_DESCRIPTIONS)
_DOCUMENTED_COLUMNS = {
    "samples": SHARD_SCHEMA.remove(SHARD_SCHEMA.get_field_index("image")),
    "images": SHARD_SCHEMA,
}


def connect(dataset: str, *, threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection over `dataset` with the inspect views; it can read the dataset, write nothing."""
    return open_views(dataset, threads=threads)[0]


def open_views(
    dataset: str, *, threads: int | None = None, trusted: bool = False, views: set[str] | None = None
) -> tuple[duckdb.DuckDBPyConnection, list[ViewInfo]]:
    """`connect` plus the description of every view (for `--schema` and error messages).

    `trusted`: the caller runs read statements only (curate's own queries, or SQL that passed
    `check_read_query`). A local dataset is then read by DuckDB natively, about ten times cheaper per file
    than through Python, with file access limited to exactly the dataset's files. Every other connection
    reads through the read-only filesystem, which no statement can write through.

    `views`: create only these (see `referenced_views`); creating a view reads every footer of its files.
    """
    ds = Dataset(str(dataset).rstrip("/") or "/")
    fs, root = storage.url_to_fs(ds.root)
    _check_dataset(ds, fs, root)
    native = trusted and storage.is_local(fs)
    con = duckdb.connect()
    duck.private_temp_directory(con)
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    with contextlib.suppress(duckdb.InvalidInputException):  # in Jupyter DuckDB refuses to touch it
        con.execute("SET enable_progress_bar = false")  # never mixed into `curate sql` output
    con.execute("SET parquet_metadata_cache = true")  # every query re-binds the views: read footers once
    rofs = None if native else ReadOnlyFileSystem(fs, root)
    if rofs is not None:
        con.register_filesystem(rofs)
    install_url_host(con)  # SQL helper url_host(url): the one host rule of curate.urls
    builder = _ViewBuilder(con, ds, rofs)
    sets = [
        builder.build_signal_set(name)
        for name in builder.signal_set_names()
        if views is None or "signals" in views or f"signals_{name}" in views
    ]
    infos = []
    for name in VIEW_NAMES:
        if views is None or name in views:
            infos.append(builder.build(name))
        if name == "signals":
            infos += sets
    if native:
        con.execute(f"SET allowed_paths = [{', '.join(_quote(p) for p in builder.files_read)}]")
    else:
        con.execute(f"SET allowed_directories = [{_quote(rofs.url(rofs.root.rstrip('/') + '/'))}]")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    log.debug(
        "opened %s (%s): %d views over %d files",
        ds.root,
        "native" if native else "read-only filesystem",
        len(infos),
        len(builder.files_read),
    )
    return con, infos


def close(con: duckdb.DuckDBPyConnection) -> None:
    """Close `con`, release the filesystem registered on it and remove its spill folder."""
    with contextlib.suppress(duckdb.Error):  # already closed: nothing left to release
        con.unregister_filesystem(PROTOCOL)
    duck.close(con)


# What makes a folder a dataset: any part a stage writes (docs/FORMAT.md). An empty folder is not one.
DATASET_PARTS = ("manifest", "shards", "signals", "decisions", "takedown.parquet")


def _check_dataset(ds: Dataset, fs, root: str) -> None:
    """Refuse a path that is not a dataset folder, instead of showing it as an empty dataset."""
    where = "pass the dataset folder given to `curate download` (it holds shards/, manifest/, signals/ ...)"
    if not storage.is_local(fs):
        fs.invalidate_cache(root)  # other processes write here: never trust a cached listing
    if not fs.exists(root):
        raise CurateError(f"dataset {ds.root} does not exist: {where}")
    if not fs.isdir(root):
        raise CurateError(f"{ds.root} is a file, not a dataset folder: {where}")
    names = {p.rstrip("/").rpartition("/")[2] for p in fs.ls(root, detail=False)}
    if not names & set(DATASET_PARTS):
        raise CurateError(f"{ds.root} is not a curate dataset (none of {', '.join(DATASET_PARTS)}): {where}")


class _ViewBuilder:
    """Creates each view from the files present, or an empty view with the documented columns."""

    def __init__(self, con: duckdb.DuckDBPyConnection, ds: Dataset, rofs: ReadOnlyFileSystem | None) -> None:
        self.con, self.ds, self.rofs = con, ds, rofs
        self.files_read: list[str] = []  # every file a view reads, as DuckDB opens it
        self.present: dict[str, int] = {}  # signal sets with files -> file count, in view order

    def build(self, name: str) -> ViewInfo:
        description, fix = _DESCRIPTIONS[name]
        sql, files = getattr(self, f"_{name}")()
        self._create(name, sql, fix)
        documented = _DOCUMENTED_COLUMNS.get(name)
        if files and documented is not None:
            # A shard written without a documented column (an older or foreign writer) shows it as NULL,
            # so that queries written for the documented schema (and `curate stats`) still run.
            have = {c.lower() for c, _ in self._view_columns(name)}
            missing = [f for f in documented if f.name.lower() not in have]
            if missing:
                extra = ", ".join(f"NULL::{_duck_type(f.type)} AS {_ident(f.name)}" for f in missing)
                self._create(name, f"SELECT *, {extra} FROM ({sql})", fix)
        return ViewInfo(name, description, files, fix, self._view_columns(name))

    def _create(self, view: str, sql: str, fix: str) -> None:
        """CREATE VIEW, which reads every file's footer: a damaged file is named with the way out."""
        try:
            self.con.execute(f"CREATE OR REPLACE VIEW {_ident(view)} AS {sql}")
        except duckdb.Error as exc:
            raise CurateError(
                f"cannot open the `{view}` view of {self.ds.root}: {str(exc).strip()}. A file it reads "
                f"is damaged or not Parquet: delete it and rerun `{fix}` to rebuild it"
            ) from None

    # sources ---------------------------------------------------------------------------------------

    def _files(self, directory: str, suffix: str = ".parquet") -> list[str]:
        return storage.list_files(directory, suffix)

    def _read(self, paths: list[str], with_file: bool = False) -> str:
        folders: dict[str, str] = {}  # resolve each folder once, not each of its (thousands of) files
        urls = []
        for path in paths:
            head, _, name = path.rpartition("/")
            if head not in folders:
                folders[head] = storage.url_to_fs(head)[1].rstrip("/")
            inner = f"{folders[head]}/{name}"
            urls.append(self.rofs.url(inner) if self.rofs else inner)
        self.files_read += urls
        urls = ", ".join(_quote(u) for u in urls)
        extra = f", filename = '{_FILE_COL}'" if with_file else ""
        return f"read_parquet([{urls}], union_by_name = true{extra})"

    def _view_columns(self, view: str) -> list[tuple[str, str]]:
        """(name, type) of a view from the catalog: CREATE VIEW bound it already; DESCRIBE would bind it
        again, reading every file footer a second time."""
        return [
            (r[0], r[1])
            for r in self.con.execute(
                "SELECT column_name, data_type FROM duckdb_columns() "
                "WHERE table_name = ? ORDER BY column_index",
                [view],
            ).fetchall()
        ]

    def _columns(self, source: str) -> list[str]:
        return [r[0] for r in self.con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()]

    # views -----------------------------------------------------------------------------------------

    def _manifest(self) -> tuple[str, int]:
        parts = self.ds.manifest_parts()
        return (f"SELECT * FROM {self._read(parts)}" if parts else _empty(MANIFEST_SCHEMA)), len(parts)

    def _shards(self, with_image: bool) -> tuple[str, int]:
        shards = self.ds.shard_paths()
        if not shards:
            schema = _DOCUMENTED_COLUMNS["images" if with_image else "samples"]
            return _empty(pa.schema([("shard", pa.string()), *schema])), 0
        dropped = ", ".join(_quote(c) for c in ([_FILE_COL] if with_image else [_FILE_COL, "image"]))
        # COLUMNS(lambda) drops `image` whether or not a file has it, without binding the files twice.
        return (
            f"SELECT {_KEY} AS shard, COLUMNS(lambda c: c NOT IN ({dropped})) "
            f"FROM {self._read(shards, with_file=True)}"
        ), len(shards)

    def _samples(self) -> tuple[str, int]:
        return self._shards(with_image=False)

    def _images(self) -> tuple[str, int]:
        return self._shards(with_image=True)

    def signal_set_names(self) -> list[str]:
        """The documented signal sets, then any other folder under signals/ (a newer annotator's)."""
        root = storage.join(self.ds.root, "signals")
        fs, inner = storage.url_to_fs(root)
        names = (
            sorted(p.rstrip("/").rpartition("/")[2] for p in fs.ls(inner, detail=False))
            if fs.exists(inner)
            else []
        )
        names = [
            n for n in names if n not in GLOBAL_SIGNALS and not n.startswith(".") and n not in SIGNAL_SETS
        ]
        return list(SIGNAL_SETS) + names

    def build_signal_set(self, name: str) -> ViewInfo:
        """View `signals_<name>`: one set alone, without the joins of `signals` (fast for one signal)."""
        paths = self._files(self.ds.signals_dir(name))
        view = f"signals_{name}"
        if paths:
            self.present[name] = len(paths)
            sql = f"SELECT * FROM {self._read(paths)}"
        else:
            sql = _empty(pa.schema([("uid", pa.string()), *SIGNAL_SETS.get(name, [])]))
        self._create(view, sql, "curate annotate")
        columns = self._view_columns(view)
        return ViewInfo(
            view,
            f"signals/{name} alone, one row per sample (faster than the joined `signals`)",
            len(paths),
            "curate annotate",
            columns,
        )

    def _signals(self) -> tuple[str, int]:
        selects, joins, seen = ["uid"], [], {"uid"}
        for index, name in enumerate(self.present):
            view = _ident(f"signals_{name}")
            cols = [c for c, _ in self._view_columns(f"signals_{name}") if c != "uid"]
            renamed = [(c, c if c not in seen else f"{name}_{c}") for c in cols]
            seen.update(new for _, new in renamed)
            inner = ", ".join(["uid"] + [f"{_ident(c)} AS {_ident(new)}" for c, new in renamed])
            alias = f"s{index}"
            joins.append(f"(SELECT {inner} FROM {view}) {alias}")
            selects += [f"{alias}.{_ident(new)}" for _, new in renamed]
        for name, schema in SIGNAL_SETS.items():  # documented columns of sets not annotated yet
            for f in schema:
                if name not in self.present and f.name not in seen:
                    selects.append(f"NULL::{_duck_type(f.type)} AS {_ident(f.name)}")
                    seen.add(f.name)
        if not joins:
            return _empty(pa.schema([("uid", pa.string())] + [f for s in SIGNAL_SETS.values() for f in s])), 0
        sql = f"SELECT {', '.join(selects)} FROM {joins[0]}"
        sql += "".join(f" FULL OUTER JOIN {j} USING (uid)" for j in joins[1:])
        return sql, sum(self.present.values())

    def _clusters(self) -> tuple[str, int]:
        path = storage.join(self.ds.signals_dir("dedup"), "clusters.parquet")
        if not storage.exists(path):
            return _empty(CLUSTERS_SCHEMA), 0
        return f"SELECT * FROM {self._read([path])}", 1

    def _overlap_files(self, evals: bool) -> list[str]:
        files = self._files(self.ds.signals_dir("overlap"))
        return [p for p in files if p.endswith(".eval.parquet") == evals]

    def _overlap(self) -> tuple[str, int]:
        files = self._overlap_files(evals=False)
        return (f"SELECT * FROM {self._read(files)}" if files else _empty(MATCHES_SCHEMA)), len(files)

    def _eval_images(self) -> tuple[str, int]:
        files = self._overlap_files(evals=True)
        if not files:
            return _empty(EVALS_SCHEMA), 0
        source = self._read(files, with_file=True)
        cols = self._columns(source)
        excluded = ", ".join(_ident(c) for c in (_FILE_COL, "benchmark") if c in cols)
        return f"SELECT {_KEY} AS benchmark, * EXCLUDE ({excluded}) FROM {source}", len(files)

    def _decisions(self) -> tuple[str, int]:
        files = self._files(self.ds.decisions_dir)
        if not files:
            return _empty(pa.schema([("recipe", pa.string()), *DECISIONS_SCHEMA])), 0
        source = self._read(files, with_file=True)
        return f"SELECT {_KEY} AS recipe, * EXCLUDE ({_FILE_COL}) FROM {source}", len(files)

    def _takedowns(self) -> tuple[str, int]:
        path = self.ds.takedown_path
        if not storage.exists(path):
            return _empty(TAKEDOWN_SCHEMA), 0
        return f"SELECT * FROM {self._read([path])}", 1


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _duck_type(arrow_type: pa.DataType) -> str:
    return str(duckdb.from_arrow(pa.table({"x": pa.array([], arrow_type)})).types[0])


def _empty(schema: pa.Schema) -> str:
    cols = ", ".join(f"NULL::{_duck_type(f.type)} AS {_ident(f.name)}" for f in schema)
    return f"SELECT {cols} WHERE false"


def referenced_views(query: str) -> set[str]:
    """The view names a query mentions (a superset is harmless: it only costs opening those views)."""
    words = {w.lower() for w in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", query)}
    return {w for w in words if w in VIEW_NAMES or w.startswith("signals_")}


def check_read_query(query: str) -> None:
    """Refuse anything but read statements (SELECT, WITH, FROM, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN).

    The connection cannot write the dataset anyway; this turns a write attempt into a message that
    says so instead of a DuckDB permission error, and keeps `curate sql` free of side effects.
    """
    statements = duckdb.extract_statements(query)  # raises duckdb.ParserException on bad syntax
    if not statements:
        raise CurateError('the query is empty: pass one SQL statement, e.g. "SELECT count(*) FROM samples"')
    for statement in statements:
        kind = statement.type.name
        if kind == "EXPLAIN":  # EXPLAIN ANALYZE runs its statement: that one must be a read too
            inner = _EXPLAIN.sub("", statement.query, count=1)
            kinds = [s.type.name for s in duckdb.extract_statements(inner)]
            kind = "SELECT" if kinds == ["SELECT"] else f"EXPLAIN of {', '.join(kinds) or 'nothing'}"
        if kind != "SELECT":
            raise CurateError(
                f"{kind} statements are not allowed: curate sql is read-only (use SELECT, WITH, "
                "DESCRIBE, SHOW, SUMMARIZE or EXPLAIN; to save a result use --format and -o FILE)"
            )


def schema_text(infos: list[ViewInfo], compact: bool = False) -> str:
    """The views, their columns and which are still empty (`--schema`; one line per view when compact)."""
    lines = []
    for info in infos:
        state = f"{info.files} file(s)" if info.files else f"no files yet: empty until `{info.fix}`"
        if compact:
            lines.append(f"  {info.name}({', '.join(name for name, _ in info.columns)}) [{state}]")
            continue
        lines.append(f"{info.name}  -- {info.description} [{state}]")
        lines += [f"    {name}  {dtype}" for name, dtype in info.columns]
    return "\n".join(lines)
