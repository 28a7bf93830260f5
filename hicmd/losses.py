"""Hi-CMD losses as pure functions: tensors in, scalar tensor out (paper eq. 1-10, docs/reference/model.md §12-13).

Weights live in `hicmd.config.LossWeights`; the trainer forms the weighted sums.

| Term (paper)                    | Function            | Reference weight |
|---------------------------------|---------------------|------------------|
| same-ID / cross / cycle recon   | `image_l1`          | 50 / 50 / 50     |
| attribute-code reconstruction   | `code_l1`           | 10               |
| "KL" on ID-excluded codes       | `code_l2_pull`      | 1                |
| LSGAN D (with R1 0.01) / G      | `lsgan_d`, `r1_penalty`, `lsgan_g` | 20 |
| ID cross-entropy                | `cross_entropy`     | 1                |
| hardest triplet (+ regulariser) | `hardest_triplet`   | 1 (margin 0.5)   |
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "image_l1",
    "code_l1",
    "code_l2_pull",
    "lsgan_d",
    "lsgan_g",
    "r1_penalty",
    "cross_entropy",
    "mine_hardest",
    "hardest_triplet",
]


def image_l1(x: Tensor, target: Tensor) -> Tensor:
    """Mean absolute error between images (same-ID, cross-modality and cycle reconstructions)."""
    return (x - target).abs().mean()


def code_l1(code: Tensor, target: Tensor) -> Tensor:
    """Mean absolute error between attribute codes (or parts of them)."""
    return (code - target).abs().mean()


def code_l2_pull(*codes: Tensor) -> Tensor:
    """The reference's "KL" term: sum over the given ID-excluded codes of mean(code^2), a pull toward 0."""
    return sum((c.pow(2).mean() for c in codes), torch.zeros((), device=codes[0].device))


def lsgan_d(real: Sequence[Tensor], fake: Sequence[Tensor]) -> Tensor:
    """Discriminator LSGAN loss summed over scales: mean(D(fake)^2) + mean((D(real) - 1)^2)."""
    return sum(f.pow(2).mean() + (r - 1).pow(2).mean() for r, f in zip(real, fake, strict=True))


def lsgan_g(fake: Sequence[Tensor]) -> Tensor:
    """Generator LSGAN loss summed over scales: mean((D(fake) - 1)^2)."""
    return sum((f - 1).pow(2).mean() for f in fake)


def r1_penalty(real_logits: Sequence[Tensor], real_images: Tensor) -> Tensor:
    """R1 gradient penalty, summed over scales: batch mean of the per-sample sum of squared gradients of
    sum(D_s(real)) with respect to the real images. `real_images` must require grad before D runs."""
    total = torch.zeros((), device=real_images.device)
    for out in real_logits:
        (grad,) = torch.autograd.grad(out.sum(), real_images, create_graph=True)
        total = total + grad.pow(2).flatten(1).sum(1).mean()
    return total


def cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    return F.cross_entropy(logits, labels)


def mine_hardest(sim: Tensor, anchor_labels: Tensor, target_labels: Tensor) -> tuple[Tensor, Tensor]:
    """Per anchor, the hardest positive (lowest same-label similarity) and hardest negative (highest
    different-label similarity). Indices are mined on detached similarities; returned values carry grad.

    sim: (A, T) cosine similarities. Returns (s_pos, s_neg), each (A,).
    """
    same = anchor_labels[:, None] == target_labels[None, :]
    with torch.no_grad():
        pos_idx = sim.detach().masked_fill(~same, float("inf")).argmin(dim=1)
        neg_idx = sim.detach().masked_fill(same, float("-inf")).argmax(dim=1)
    rows = torch.arange(sim.shape[0], device=sim.device)
    return sim[rows, pos_idx], sim[rows, neg_idx]


def hardest_triplet(
    anchors: Tensor,
    anchor_labels: Tensor,
    targets: Tensor,
    target_labels: Tensor,
    margin: float = 0.5,
    reg_weight: float = 1.0,
) -> Tensor:
    """Hardest-mined cosine triplet loss of the reference, with its similarity regulariser:

        mean(relu(s_neg + margin - s_pos)) + reg_weight * [mean((1 + s_neg)^2) + mean((s_pos - 1)^2)]

    anchors (A, D) and targets (T, D) are L2-normalised; every anchor needs a positive and a negative among the
    targets (the anchors are usually among the targets).
    """
    s_pos, s_neg = mine_hardest(anchors @ targets.t(), anchor_labels, target_labels)
    ranking = F.relu(s_neg + margin - s_pos).mean()
    regulariser = (1 + s_neg).pow(2).mean() + (s_pos - 1).pow(2).mean()
    return ranking + reg_weight * regulariser
