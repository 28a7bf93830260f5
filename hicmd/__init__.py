"""hicmd: Hi-CMD visible-infrared person re-identification, from training to two-camera streaming.

Importing this package is cheap and never imports torch: the model lives in `hicmd.model`, the edge runtime in
`hicmd.runtime` (numpy + OpenCV + one inference backend), the exporters in `hicmd.export`.

The torch-free Python API (loaded on first use, from an export folder written by `hicmd export`):

    from hicmd import Embedder, Translator, StreamOptions, run_stream

    with Embedder("model/") as embedder:             # uint8 crops in (BGR or gray, any size) ...
        vectors = embedder.embed(crops, "ir")        # ... (N, D) float32 L2-normalised embeddings out
    summary = run_stream(StreamOptions(rgb="rgb.mp4", ir="ir.mp4"), Embedder("model/"), on_event=print)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["__version__", "Embedder", "Translator", "StreamOptions", "Summary", "run_stream", "HicmdError", "UserError"]

# public name -> module that defines it; imported on first access so `import hicmd` stays light
_LAZY = {"Embedder": "hicmd.runtime.embedder", "Translator": "hicmd.runtime.translate",
         "StreamOptions": "hicmd.runtime.stream", "Summary": "hicmd.runtime.stream",
         "run_stream": "hicmd.runtime.stream", "HicmdError": "hicmd.errors",
         "UserError": "hicmd.errors"}

if TYPE_CHECKING:  # what type checkers and IDEs see
    from hicmd.errors import HicmdError, UserError
    from hicmd.runtime.embedder import Embedder
    from hicmd.runtime.stream import StreamOptions, Summary, run_stream
    from hicmd.runtime.translate import Translator


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hicmd' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
