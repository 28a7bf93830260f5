"""PyTorch checkpoint backend for development: the very modules hicmd.export turns into ONNX, run eagerly.

The only module under hicmd.runtime that imports torch, and only when `open_backend(..., backend="torch")` picks it.
It wraps the model in `hicmd.export.graphs.EmbedderGraph` / `GeneratorGraph`, so inputs and outputs are exactly the
exported graphs': `images` uint8 NHWC RGB -> `embedding`, `prototype`, `attribute`; `prototype`, `attribute` ->
`image` float32 (N, 3, H, W) RGB in 0..255.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from hicmd.modality import MODALITIES

from .base import BackendBase, BackendError

__all__ = ["TorchBackend"]

_MODELS: dict[tuple[str, str], tuple[Any, Any]] = {}  # (checkpoint, device) -> (model, cfg): rgb and ir share one


def _load(path: Path, device: str) -> tuple[Any, Any]:
    key = (str(path.resolve()), device)
    if key not in _MODELS:
        from hicmd.checkpoint import CheckpointError, load_model

        try:
            _MODELS[key] = load_model(path, device=device)
        except CheckpointError as exc:
            raise BackendError(str(exc)) from None
    return _MODELS[key]


class TorchBackend(BackendBase):
    """`role` "embedder" (with `modality` "rgb"/"ir") or "generator" from a training checkpoint."""

    def __init__(self, checkpoint: str | Path, role: str, modality: str | None = None, device: str = "cpu") -> None:
        from hicmd.export.graphs import EMBEDDER_INPUT, EMBEDDER_OUTPUTS, GENERATOR_INPUTS, GENERATOR_OUTPUT
        from hicmd.export.graphs import EmbedderGraph, GeneratorGraph

        checkpoint = Path(checkpoint)
        if not checkpoint.is_file():
            raise BackendError(f"checkpoint {checkpoint} not found; the torch backend needs the training checkpoint "
                               f"the model was exported from")
        if device == "cuda" and not torch.cuda.is_available():
            raise BackendError("torch backend: --device cuda requested but torch sees no CUDA device")
        if role not in ("embedder", "generator") or (role == "embedder" and modality not in MODALITIES):
            raise BackendError(f"torch backend cannot run role={role!r} modality={modality!r}")
        model, cfg = _load(checkpoint, device)
        self.device = torch.device(device)
        m = cfg.model
        if role == "embedder":
            self.graph = EmbedderGraph(model, modality).to(self.device).eval()
            self.input_shapes = {EMBEDDER_INPUT: (-1, m.height, m.width, 3)}
            self.output_names = tuple(EMBEDDER_OUTPUTS)
            self._dtypes = {EMBEDDER_INPUT: np.uint8}
        else:
            self.graph = GeneratorGraph(model).to(self.device).eval()
            self.input_shapes = dict(zip(GENERATOR_INPUTS, ((-1, *m.prototype_shape), (-1, m.attribute_dim))))
            self.output_names = (GENERATOR_OUTPUT,)
            self._dtypes = {name: np.float32 for name in GENERATOR_INPUTS}
        what = role + (f"/{modality}" if modality else "")
        self.description = f"torch {torch.__version__} {self.device} {checkpoint.name} ({what})"

    @torch.inference_mode()
    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.graph is None:
            raise BackendError("the torch backend is closed")
        self._require(feeds, self.input_shapes)
        args = [torch.from_numpy(np.ascontiguousarray(feeds[n], dtype=self._dtypes[n])).to(self.device)
                for n in self.input_shapes]
        out = self.graph(*args)
        out = out if isinstance(out, tuple) else (out,)
        return {n: t.float().cpu().numpy() for n, t in zip(self.output_names, out)}

    def close(self) -> None:
        self.graph = None
