"""`hicmd stream`."""

from __future__ import annotations

from hicmd.errors import UserError

NAME = "stream"


def command() -> None:
    """Watch an RGB and an IR camera, track people and say which IR person is which RGB person."""
    raise UserError("'hicmd stream' is not implemented yet")
