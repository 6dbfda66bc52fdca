"""Existing datasets of other tools, taken in as curate datasets (`curate import`)."""

from curate.imports.stage import import_img2dataset

__all__ = ["import_img2dataset"]
