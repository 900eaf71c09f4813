"""The one exception type for bad user input.

The CLI prints a `VganError` as a single `error: ...` line and exits with status 2,
so every message must say what was wrong and what to do about it.
"""


class VganError(ValueError):
    """Bad input from the user: an unknown name, a wrong shape, an unreadable file."""
