"""`hicmd synth`."""

from __future__ import annotations

from hicmd.errors import UserError

NAME = "synth"


def command() -> None:
    """Write SynthVI, the procedural visible-infrared dataset, in the RegDB layout."""
    raise UserError("'hicmd synth' is not implemented yet")
