"""Errors that the CLI turns into one clear message instead of a traceback."""


class CurateError(Exception):
    """A user-facing problem: bad input, missing file, wrong option. The message names the fix."""
