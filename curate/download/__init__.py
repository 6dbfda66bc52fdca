"""`curate download`: fetch every manifest row's image into Parquet shards, fast, politely and safely.

config.py (options) -> stage.py (jobs per manifest part) -> shard.py (threads per worker) ->
fetch.py (HTTP: safety.py, hosts.py, robots.py) and process.py (decode, resize, encode) -> writer.py.
"""

from __future__ import annotations

from typing import Any

from curate.download.config import DownloadConfig

__all__ = ["TRANSIENT_CLASSES", "DownloadConfig", "download"]


def __getattr__(name: str) -> Any:
    """`download` and `TRANSIENT_CLASSES` load stage.py (pyarrow) on first use: building the CLI's parser
    imports the options above, and every other command would otherwise pay for pyarrow at start-up."""
    if name in ("download", "TRANSIENT_CLASSES"):
        from curate.download import stage

        return getattr(stage, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
