"""Filters: one module per decision rule over stored signals (installed as curate.filters)."""
