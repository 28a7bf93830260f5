"""Image reading and batching shared by training, evaluation and export checks.

OpenCV reads; torch is imported only inside `to_tensor_batch`, so this module loads without torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from hicmd.data.records import DataError
from hicmd.runtime.resize import resize

__all__ = ["read_image", "resize_rgb", "to_tensor_batch"]


def resize_rgb(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize to (height, width) with the reference's PIL bicubic: the same function the runtime embedder calls
    (hicmd.runtime.resize), so a model is served the pixels it was trained and evaluated on."""
    return resize(image, height, width)


def read_image(path: str | Path, height: int, width: int) -> np.ndarray:
    """uint8 (height, width, 3) RGB. Gray and IR images become three identical channels.

    Raises DataError (a ValueError) naming the path when the file is missing or cannot be decoded, so a
    trainer can catch exactly that, count the image as corrupt and carry on.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"image {path} does not exist")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)  # gray files come back as 3 equal channels
    if image is None or image.size == 0:
        raise DataError(f"image {path} cannot be decoded (corrupt or not an image)")
    return resize_rgb(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), height, width)


def to_tensor_batch(images: Sequence[np.ndarray], mean: Sequence[float], std: Sequence[float]):
    """uint8 HxWx3 RGB images of one size -> float tensor (N, 3, H, W), scaled to 0..1 and normalised."""
    import torch

    if len(images) == 0:
        raise ValueError("to_tensor_batch needs at least one image")
    batch = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div_(255.0)
    mean_t = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return batch.sub_(mean_t).div_(std_t).contiguous()
