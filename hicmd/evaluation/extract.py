"""Test-time features with the torch model (docs/reference/model.md §16): batches of 64, each modality through its own
encoders, L2-normalised embeddings, optional horizontal-flip averaging."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Sequence

import numpy as np
from hicmd.modality import MODALITIES

if TYPE_CHECKING:
    import torch

    from hicmd.config import ModelConfig
    from hicmd.data import Record

__all__ = ["embed_batch", "extract_features"]


def embed_batch(model: torch.nn.Module, images: torch.Tensor, modality: str, flip: bool = False) -> torch.Tensor:
    """(N, D) L2-normalised features of one ImageNet-normalised batch. With flip, the features of the image and
    of its mirror are summed and re-normalised (a real second pass, unlike the original's no-op TTA, §17)."""
    import torch
    import torch.nn.functional as F

    with torch.inference_mode():
        features = model.embed(images, modality)
        if flip:
            features = F.normalize(features + model.embed(torch.flip(images, dims=[3]), modality), dim=1)
    return features


def extract_features(
    model: torch.nn.Module,
    records: Sequence[Record],
    model_cfg: ModelConfig,
    batch_size: int = 64,
    flip: bool = False,
    device: str = "cpu",
    description: str = "extracting features",
    show_progress: bool = True,
) -> np.ndarray:
    """(len(records), D) float64 features in record order. Each batch holds one modality, so the routing to
    the RGB or IR encoders is exact; images are decoded on a few threads while the model runs."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from hicmd.data.io import read_image, to_tensor_batch

    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1, got {batch_size}")
    model.eval()
    out = np.zeros((len(records), model_cfg.embedding_dim), dtype=np.float64)
    batches = []
    for modality in MODALITIES:
        rows = [i for i, r in enumerate(records) if r.modality == modality]
        batches += [(modality, rows[s:s + batch_size]) for s in range(0, len(rows), batch_size)]

    def load(rows: list[int]) -> list[np.ndarray]:
        return [read_image(records[i].path, model_cfg.height, model_cfg.width) for i in rows]

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with ThreadPoolExecutor(max_workers=2) as pool, Progress(*columns, disable=not show_progress,
                                                             transient=True) as progress:
        task = progress.add_task(description, total=len(records))
        pending = pool.submit(load, batches[0][1]) if batches else None
        for k, (modality, rows) in enumerate(batches):
            images = pending.result()
            if k + 1 < len(batches):  # decode the next batch while this one runs through the model
                pending = pool.submit(load, batches[k + 1][1])
            x = to_tensor_batch(images, model_cfg.mean, model_cfg.std).to(device)
            out[rows] = embed_batch(model, x, modality, flip).float().cpu().numpy()
            progress.advance(task, len(rows))
    return out
