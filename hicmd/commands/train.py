"""`hicmd train`."""

from __future__ import annotations

from hicmd.errors import UserError

NAME = "train"


def command() -> None:
    """Train Hi-CMD (ID-PIG + HFL) on RegDB, SYSU-MM01, LLCM or SynthVI."""
    raise UserError("'hicmd train' is not implemented yet")
