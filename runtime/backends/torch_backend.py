"""PyTorch checkpoint backend for development: same inputs and outputs as the exported ONNX graphs.

The only module under hicmd.runtime that imports torch, and only when `open_backend(..., backend="torch")` picks it.
Embedder: `images` uint8 NHWC RGB -> `embedding`, `prototype`, `attribute`. Generator: `prototype`, `attribute`
-> `image` float32 (N,3,H,W) RGB in 0..255.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from .base import BackendError

__all__ = ["TorchBackend"]

_MODELS: dict[tuple[str, str], tuple[Any, Any]] = {}  # (checkpoint, device) -> (model, cfg): rgb and ir share one


def _load(path: Path, device: str) -> tuple[Any, Any]:
    key = (str(path.resolve()), device)
    if key not in _MODELS:
        from hicmd.train.checkpoint import load_model

        _MODELS[key] = load_model(path, device=device)
    return _MODELS[key]


class TorchBackend:
    """`role` "embedder" (with `modality` "rgb"/"ir") or "generator" from a training checkpoint."""

    def __init__(self, checkpoint: str | Path, role: str, modality: str | None = None, device: str = "cpu") -> None:
        checkpoint = Path(checkpoint)
        if not checkpoint.is_file():
            raise BackendError(f"checkpoint {checkpoint} not found; the torch backend needs the training checkpoint "
                               f"the model was exported from")
        if device == "cuda" and not torch.cuda.is_available():
            raise BackendError("torch backend: --device cuda requested but torch sees no CUDA device")
        if role not in ("embedder", "generator") or (role == "embedder" and modality not in ("rgb", "ir")):
            raise BackendError(f"torch backend cannot run role={role!r} modality={modality!r}")
        self.model, cfg = _load(checkpoint, device)
        self.role, self.modality, self.device = role, modality, torch.device(device)
        m = cfg.model
        self._mean = torch.tensor(m.mean, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(m.std, device=self.device).view(1, 3, 1, 1)
        if role == "embedder":
            self.input_shapes = {"images": (-1, m.height, m.width, 3)}
            self.output_names = ("embedding", "prototype", "attribute")
        else:
            self.input_shapes = {"prototype": (-1, *m.prototype_shape), "attribute": (-1, m.attribute_dim)}
            self.output_names = ("image",)
        self.description = f"torch {torch.__version__} {device} {checkpoint.name} ({role}{'/' + modality if modality else ''})"

    @torch.inference_mode()
    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        missing = set(self.input_shapes) - set(feeds)
        if missing:
            raise BackendError(f"missing inputs {sorted(missing)} for {self.description}")
        if self.role == "embedder":
            images = torch.from_numpy(np.ascontiguousarray(feeds["images"], dtype=np.uint8)).to(self.device)
            x = (images.permute(0, 3, 1, 2).float() / 255.0 - self._mean) / self._std
            codes = self.model.encode(x, self.modality)
            out = {"embedding": self.model.embed(x, self.modality), "prototype": codes.prototype,
                   "attribute": codes.attribute}
        else:
            prototype = torch.from_numpy(np.asarray(feeds["prototype"], dtype=np.float32)).to(self.device)
            attribute = torch.from_numpy(np.asarray(feeds["attribute"], dtype=np.float32)).to(self.device)
            image = self.model.decode(prototype, attribute)
            out = {"image": ((image * self._std + self._mean) * 255.0).clamp(0, 255)}
        return {k: v.float().cpu().numpy() for k, v in out.items()}

    def close(self) -> None:
        self.model = None

    def __enter__(self) -> "TorchBackend":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
