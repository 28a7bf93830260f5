"""The project's exception root. Torch-free, so every layer (runtime included) can raise these.

Every error hicmd raises on purpose derives from `HicmdError` (and keeps its specific base, e.g. ValueError, for
callers that catch those); its message says what was wrong and what to do. The CLI turns any of them into one red
line and exit code 2 (hicmd.cli.main); library code raises domain errors, never CLI wording.
"""

__all__ = ["HicmdError", "UserError"]


class HicmdError(Exception):
    """Root of every error hicmd raises deliberately."""


class UserError(HicmdError):
    """Bad input from the user (a path, a flag, a file of the wrong kind). The message says what to do."""
