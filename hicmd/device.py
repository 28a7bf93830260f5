"""Which torch device a run uses: `auto | cpu | cuda | cuda:N`, checked before anything is loaded onto it."""

from __future__ import annotations

import torch

from hicmd.errors import HicmdError

__all__ = ["DeviceError", "resolve_device"]


class DeviceError(HicmdError, ValueError):
    """A device that does not exist here or that torch cannot run on."""


def resolve_device(spec: str) -> torch.device:
    """`auto | cpu | cuda | cuda:N` -> torch.device; auto picks CUDA when present."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise DeviceError(f"device {spec!r} is not supported; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"device {spec!r} was asked for but CUDA is not available; use --device cpu")
    if device.type not in ("cpu", "cuda"):
        raise DeviceError(f"device {spec!r} is not supported; use auto, cpu, cuda or cuda:N")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise DeviceError(f"device {spec!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device
