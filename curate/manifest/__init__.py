"""`curate manifest`: normalise URL lists (txt/csv/tsv/json/jsonl/parquet, optionally .gz) into manifest
parts.

inputs.py finds the files, readers.py/jsonread.py stream them, columns.py picks url/caption columns,
normalize.py adds uid and status and drops repeats (repeats.py), stage.py writes parts
and .curate/summary.json.
"""

from curate.manifest.stage import SUMMARY, build_manifest

__all__ = ["SUMMARY", "build_manifest"]
