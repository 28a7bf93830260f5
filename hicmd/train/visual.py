"""Sample grids: one row per image kind (real RGB, real IR, translations, reconstructions, cycles), one column per
identity, labelled on the left, written as PNG with OpenCV."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
from torch import Tensor

from hicmd.runtime.atomic import write_image

__all__ = ["denormalise", "save_grid"]


def denormalise(x: Tensor, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """ImageNet-normalised (N, 3, H, W) -> uint8 (N, H, W, 3) RGB."""
    x = x.detach().float().cpu()
    m = x.new_tensor(mean).view(1, 3, 1, 1)
    s = x.new_tensor(std).view(1, 3, 1, 1)
    return ((x * s + m).clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()


def save_grid(path: str | Path, rows: dict[str, Tensor], mean: Sequence[float], std: Sequence[float],
              label_width: int = 90) -> Path:
    """Write `rows` (name -> images of one batch) as one labelled PNG grid."""
    lines = []
    for name, images in rows.items():
        strip = np.concatenate(list(denormalise(images, mean, std)), axis=1)
        label = np.full((strip.shape[0], label_width, 3), 255, np.uint8)
        cv2.putText(label, name, (4, strip.shape[0] // 2 + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1,
                    cv2.LINE_AA)
        lines.append(np.concatenate([label, strip], axis=1))
    grid = cv2.cvtColor(np.concatenate(lines, axis=0), cv2.COLOR_RGB2BGR)
    return write_image(path, grid)
