"""`hicmd bench`."""

from __future__ import annotations

from hicmd.errors import UserError

NAME = "bench"


def command() -> None:
    """Measure embedding latency and throughput for every available backend."""
    raise UserError("'hicmd bench' is not implemented yet")
