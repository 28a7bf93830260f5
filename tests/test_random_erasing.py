"""The HFL branch's random erasing follows the reference eraser's distribution, not torchvision's.

The reference (Zhong et al.'s RandomErasing, as the authors' code uses it) draws the aspect ratio uniformly in
[0.3, 1/0.3] with up to 100 tries; torchvision's draws it log-uniformly with 10 tries. Over 20,000 draws at 256x128
the reference gives P(taller than wide) ~0.81 and a mean erased area ~0.20 of the image; torchvision 0.59 / 0.19.
"""

from __future__ import annotations

import numpy as np
import torch
from torchvision.transforms import RandomErasing

from hicmd.train.hfl import erase_box, random_erase


def _stats(boxes: list[tuple[int, int]]) -> tuple[float, float]:
    return float(np.mean([h > w for h, w in boxes])), float(np.mean([h * w / (256 * 128) for h, w in boxes]))


def test_erase_box_matches_the_reference_statistics():
    torch.manual_seed(0)
    boxes = [b[2:] for b in (erase_box(256, 128) for _ in range(20_000)) if b is not None]
    tall, area = _stats(boxes)
    assert 0.795 <= tall <= 0.825 and 0.195 <= area <= 0.210, (tall, area)
    # torchvision's eraser, for contrast: the same test would refuse it
    torch.manual_seed(0)
    tv = [RandomErasing.get_params(torch.zeros(3, 256, 128), (0.02, 0.4), (0.3, 1 / 0.3), [0])[2:4]
          for _ in range(20_000)]
    tv_tall, _ = _stats([(int(h), int(w)) for h, w in tv if h < 256])
    assert not 0.795 <= tv_tall <= 0.825, tv_tall


def test_random_erase_zeroes_one_rectangle_per_erased_image_on_a_copy():
    torch.manual_seed(3)
    x = torch.ones(64, 3, 256, 128)
    y = random_erase(x, 0.5)
    assert torch.equal(x, torch.ones_like(x))  # the input is untouched
    erased = [(img == 0).all(0) for img in y]
    counts = [int(m.sum()) for m in erased]
    assert 20 <= sum(c > 0 for c in counts) <= 44  # p = 0.5 of 64 images
    for mask in erased:
        if mask.any():  # one axis-aligned rectangle
            rows, cols = mask.any(1).nonzero().ravel(), mask.any(0).nonzero().ravel()
            assert int(mask.sum()) == len(rows) * len(cols)
