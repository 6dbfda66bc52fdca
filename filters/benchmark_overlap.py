"""benchmark_overlap: the sample near-duplicates (or repeats the caption of) an evaluation image."""

from typing import ClassVar

from curate.filters.base import Filter, Settings


class BenchmarkOverlap(Filter):
    reason = "benchmark_overlap"
    settings: ClassVar[Settings] = {
        "drop_benchmark_overlap": (bool, "drop training samples matching a benchmark (curate overlap)")
    }
    needs = ("overlap",)

    def drop_when(self) -> str:
        return "coalesce(overlap.matches, 0) > 0"
