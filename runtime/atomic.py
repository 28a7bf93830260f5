"""Files written so that a crash, kill or full disk leaves the previous file or the complete new one, never half of
one: a temporary file in the same folder, flushed to disk, then renamed over the target. Torch-free."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable

__all__ = ["write_atomically"]


def write_atomically(path: str | Path, data: str | bytes | Callable[[BinaryIO], object]) -> Path:
    """Write `data` to `path`, creating its folder: text (as UTF-8), bytes, or a function that writes into the
    binary file it is given (a checkpoint's `torch.save`, without holding the whole file in memory first)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            if callable(data):
                data(fh)
            else:
                fh.write(data.encode() if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
