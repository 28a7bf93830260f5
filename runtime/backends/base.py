"""The one protocol every inference backend implements, and the error they raise. Torch-free."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["Backend", "BackendError"]


class BackendError(RuntimeError):
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
