"""`hicmd eval`."""

from __future__ import annotations

from hicmd.errors import UserError

NAME = "eval"


def command() -> None:
    """Evaluate a checkpoint: CMC, mAP, mINP under the RegDB / SYSU-MM01 / LLCM protocols."""
    raise UserError("'hicmd eval' is not implemented yet")
