"""Consent after the fact: takedown requests (requests), `curate takedown` on shards and exports
(stage), and every derived copy (purge)."""
