"""`hicmd demo`."""

from __future__ import annotations

from hicmd.errors import UserError

NAME = "demo"


def command() -> None:
    """The whole job on SynthVI: data, train, evaluate, export, stream, benchmark, report."""
    raise UserError("'hicmd demo' is not implemented yet")
