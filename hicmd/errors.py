"""The one exception type for user mistakes: the CLI prints its message on one line and exits non-zero."""

__all__ = ["UserError"]


class UserError(Exception):
    """Bad input from the user (a path, a flag, a file of the wrong kind). The message says what to do."""
