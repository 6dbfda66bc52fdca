"""`curate sql DATASET "QUERY"`: read-only DuckDB SQL over a dataset's views (docs/FORMAT.md#inspect)."""

from __future__ import annotations

import argparse
import sys

NAME = "sql"
HELP = "run read-only DuckDB SQL over a dataset (views: manifest, samples, images, signals, decisions, ...)"
ORDER = 60
TABLE_ROWS = 1000  # rows printed by --format table; other formats write every row


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(NAME, help=HELP, description=HELP + ". Run with --schema to list the views.")
    parser.add_argument("dataset", metavar="DATASET", help="dataset folder or fsspec URL")
    parser.add_argument(
        "query", nargs="?", metavar="QUERY", help='e.g. "SELECT status, count(*) FROM samples GROUP BY 1"'
    )
    parser.add_argument(
        "--format",
        choices=["table", "csv", "json", "parquet"],
        default="table",
        help="table (default), csv, json (one object per line) or parquet (needs -o)",
    )
    parser.add_argument("-o", "--output", metavar="FILE", help="write the result here instead of stdout")
    parser.add_argument("--schema", action="store_true", help="print the views and their columns, then exit")
    parser.add_argument("--threads", type=int, default=None, help="DuckDB threads (default: all cores)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import duckdb

    from curate import publish
    from curate.errors import CurateError
    from curate.inspect import sql
    from curate.inspect.output import write_result

    if not args.schema and not args.query:
        raise CurateError('give a QUERY, e.g. curate sql DATASET "SELECT count(*) FROM samples", or --schema')
    if args.format == "parquet" and not args.output:
        raise CurateError("--format parquet writes a file: add -o FILE.parquet")
    if args.output:  # never over the dataset's own files (`-o DATASET/shards/00000.parquet`)
        publish.check_location(args.output, args.dataset, "query result")
    if args.schema:
        con, infos = sql.open_views(args.dataset, threads=args.threads, trusted=True)
        sql.close(con)
        print(sql.schema_text(infos))
        return 0
    try:
        sql.check_read_query(args.query)
        # Only the views the query names are opened (each reads its files' footers), all of them when it
        # names none (SHOW TABLES, information_schema); trusted: the statement was checked above.
        con, _ = sql.open_views(
            args.dataset, threads=args.threads, trusted=True, views=sql.referenced_views(args.query) or None
        )
        try:
            table = con.sql(args.query).to_arrow_table()
        finally:
            sql.close(con)
    except duckdb.Error as exc:
        con, infos = sql.open_views(args.dataset, trusted=True)
        sql.close(con)
        raise CurateError(
            f"{str(exc).strip()}\n\nviews in {args.dataset}:\n{sql.schema_text(infos, compact=True)}"
        ) from None
    write_result(table, args.format, args.output, max_table_rows=TABLE_ROWS, stdout=sys.stdout)
    return 0
