"""`hicmd export`."""

from __future__ import annotations

from hicmd.errors import UserError

NAME = "export"


def command() -> None:
    """Export a checkpoint to ONNX (and FP16 ONNX, TensorRT engines) with parity gates."""
    raise UserError("'hicmd export' is not implemented yet")
