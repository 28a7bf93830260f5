"""The one resize of model inputs: training, evaluation, export parity and the runtime embedder all call `resize`.

The authors resize every training and test image with torchvision's `Resize((256, 128), interpolation=3)` on a PIL
image, i.e. Pillow's bicubic resampling, which widens its kernel when shrinking (antialiasing). OpenCV has no such
filter: INTER_CUBIC aliases on downscales and INTER_AREA / INTER_LINEAR give other pixels (up to 33/255 apart), so a
model would be served different pixels from the ones it learned. Pillow itself is the only honest way to be equal to
it, and it is torch-free, so training and the edge runtime import the same function from here.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

__all__ = ["RESIZE", "resize"]

# The name manifest.json records (input.resize); a runtime refuses a model exported with another one.
RESIZE = "pil-bicubic"


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """uint8 (H, W) or (H, W, C) with C in 1, 3 -> (height, width[, C]) uint8, as PIL's bicubic `Image.resize`.

    Channels are resampled independently, so RGB and BGR order give the same pixels, and a gray (H, W) image equals
    each channel of its 3-channel copy (the reference converts IR images to RGB before resizing)."""
    if image.shape[:2] == (height, width):
        return image
    if image.ndim == 3 and image.shape[2] == 1:
        return resize(image[..., 0], height, width)[..., None]
    if image.dtype != np.uint8 or not (image.ndim == 2 or image.ndim == 3 and image.shape[2] == 3):
        raise ValueError(f"resize takes uint8 HxW, HxWx1 or HxWx3 images, not {image.dtype} {image.shape}")
    picture = Image.fromarray(np.ascontiguousarray(image))
    return np.asarray(picture.resize((width, height), Image.Resampling.BICUBIC))
