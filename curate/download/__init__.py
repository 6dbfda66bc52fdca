"""`curate download`: fetch every manifest row's image into Parquet shards, fast, politely and safely.

config.py (options) -> run.py (jobs per manifest part) -> shard.py (threads per worker) ->
fetch.py (HTTP: safety.py, hosts.py, robots.py) and process.py (decode, resize, encode) -> writer.py.
"""

from curate.download.config import DownloadConfig
from curate.download.run import TRANSIENT_CLASSES, download

__all__ = ["TRANSIENT_CLASSES", "DownloadConfig", "download"]
