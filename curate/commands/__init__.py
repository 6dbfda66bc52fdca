"""Command modules: each defines ORDER, NAME, HELP and register(subparsers)."""
