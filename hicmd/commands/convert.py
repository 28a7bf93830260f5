"""`hicmd convert-original`."""

from __future__ import annotations

from hicmd.errors import UserError

NAME = "convert-original"


def command() -> None:
    """Convert the authors' released checkpoint (gen_*.pt, id_*.pt) into a hicmd checkpoint."""
    raise UserError("'hicmd convert-original' is not implemented yet")
