"""Concept matching and balancing as MetaCLIP built CLIP's data (Xu et al. 2023; MetaCLIP 2, 2025).

entries.py reads the entry list (the default ships in curate/data), matching.py finds the entries each
caption contains with one Aho-Corasick automaton, balance.py turns a recipe's [balance] table into SQL
that curate.filter runs in its decision query.
"""
