"""`hicmd info`."""

from __future__ import annotations

from hicmd.errors import UserError

NAME = "info"


def command() -> None:
    """Model summary: parameters and MACs per module for a config."""
    raise UserError("'hicmd info' is not implemented yet")
