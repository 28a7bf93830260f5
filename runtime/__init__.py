"""hicmd.runtime: the edge runtime. numpy + OpenCV + one inference backend (TensorRT, ONNX Runtime or, for
development, PyTorch). Never imports torch unless the PyTorch backend is chosen.

Installed as `hicmd.runtime` (see pyproject's package-dir). `manifest.json`, written by hicmd.export, is the only
contract between export and runtime (runtime/manifest.py).

The library API (torch-free): `Embedder`, `Translator`, and the two-camera pipeline as `run_stream(StreamOptions(...),
embedder, on_event=...)`. Names load on first use, so `import hicmd.runtime.manifest` does not pull in the pipeline.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["Embedder", "Translator", "StreamOptions", "Summary", "StreamError", "run_stream", "load_manifest"]

_LAZY = {"Embedder": ".embedder", "Translator": ".translate", "StreamOptions": ".stream", "Summary": ".stream",
         "StreamError": ".stream", "run_stream": ".stream", "load_manifest": ".manifest"}

if TYPE_CHECKING:
    from .embedder import Embedder
    from .manifest import load_manifest
    from .stream import StreamError, StreamOptions, Summary, run_stream
    from .translate import Translator


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'hicmd.runtime' has no attribute {name!r}")
