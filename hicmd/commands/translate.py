"""`hicmd translate`."""

from __future__ import annotations

from hicmd.errors import UserError

NAME = "translate"


def command() -> None:
    """Render a person with another image's ID-excluded attributes (pose, illumination)."""
    raise UserError("'hicmd translate' is not implemented yet")
