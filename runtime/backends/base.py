"""The one protocol every inference backend implements, and the error they raise. Torch-free."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable

import numpy as np

from hicmd.errors import HicmdError

__all__ = ["Backend", "BackendBase", "BackendError"]


class BackendError(HicmdError, RuntimeError):
    """A backend that cannot be opened or run; the message is one line saying what to do."""


@runtime_checkable
class Backend(Protocol):
    """Named numpy tensors in, named numpy tensors out. The first axis of every input is the batch.

    `description` says what runs (e.g. "onnxruntime CPUExecutionProvider rgb.onnx"); `input_shapes` maps each
    input name to its shape with -1 for dynamic axes, so callers can check it against the manifest.
    """

    description: str
    input_shapes: dict[str, tuple[int, ...]]
    output_names: tuple[str, ...]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def close(self) -> None: ...


class BackendBase:
    """What every implementation shares: `with` support (calls `close`) and the missing-input check."""

    description: str

    def close(self) -> None:  # pragma: no cover - every backend overrides it
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _require(self, feeds: dict[str, np.ndarray], names: Iterable[str]) -> None:
        missing = set(names) - set(feeds)
        if missing:
            raise BackendError(f"missing inputs {sorted(missing)} for {self.description}")
