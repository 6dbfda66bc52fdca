"""A synthetic web on 127.0.0.1: photo-like images, HTML pages, near-duplicates and deliberate faults.

    from curate.synthweb import SyntheticWeb, make_photo, CLASSES
    with SyntheticWeb(n_images=200, seed=0) as web:
        web.write_url_list("urls.parquet")
        ...

Every later stage's tests and `curate demo` run on it; docs/ARCHITECTURE.md describes it.
"""

from curate.synthweb.benchmark import BenchmarkFile, BenchmarkSet, label_dir, write_benchmark
from curate.synthweb.faults import EXPECTED_ERROR_CLASS, FAULT_PATHS
from curate.synthweb.photos import BACKGROUNDS, CLASSES, make_photo
from curate.synthweb.server import RequestRecord
from curate.synthweb.web import SyntheticWeb, SynthImage, SynthPage

__all__ = [
    "BACKGROUNDS",
    "CLASSES",
    "EXPECTED_ERROR_CLASS",
    "FAULT_PATHS",
    "BenchmarkFile",
    "BenchmarkSet",
    "RequestRecord",
    "SynthImage",
    "SynthPage",
    "SyntheticWeb",
    "label_dir",
    "make_photo",
    "write_benchmark",
]
