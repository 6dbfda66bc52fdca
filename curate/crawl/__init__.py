"""`curate crawl`: image URL + alt text pairs from Common Crawl WARC/WAT archives, as a manifest.

inputs.py expands the arguments (paths, globs, URLs, CC listings); archive.py streams records out of
gzip members; extract.py routes WARC responses (http.py decodes, html_images.py parses) and WAT records
(wat.py) to pairs.py, which resolves URLs and applies the alt rule; writer.py writes each file's parts;
stage.py runs one executor job per file and repeats.py drops repeats across files. wat_writer.py writes
Common Crawl style WAT files (tests, benchmarks, the demo).
"""

from curate.crawl.stage import SUMMARY, crawl
from curate.crawl.writer import CRAWL_SCHEMA

__all__ = ["CRAWL_SCHEMA", "SUMMARY", "crawl"]
