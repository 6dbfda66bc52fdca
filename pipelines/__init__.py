"""The pipeline recipes shipped with curate (TOML files beside this module)."""
