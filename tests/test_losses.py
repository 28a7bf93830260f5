"""Each loss on small hand-checkable tensors: a zero case and a known non-zero value."""

from __future__ import annotations

import math

import pytest
import torch

from hicmd import losses
from hicmd.config import LossWeights


def test_reference_loss_weights() -> None:
    w = LossWeights()
    assert (w.recon_x, w.cross_x, w.cycle_x, w.recon_code) == (50, 50, 50, 10)
    assert (w.kl, w.gan, w.ce, w.triplet, w.margin, w.r1) == (1, 20, 1, 1, 0.5, 0.01)


def test_image_and_code_l1() -> None:
    x = torch.tensor([[1.0, -2.0], [3.0, 0.0]])
    assert losses.image_l1(x, x).item() == 0.0
    assert losses.image_l1(x, torch.zeros_like(x)).item() == pytest.approx((1 + 2 + 3 + 0) / 4)
    assert losses.code_l1(torch.ones(2, 3), torch.zeros(2, 3)).item() == pytest.approx(1.0)


def test_code_l2_pull_sums_mean_squares() -> None:
    assert losses.code_l2_pull(torch.zeros(2, 4)).item() == 0.0
    a, b = torch.tensor([[1.0, 3.0]]), torch.tensor([[2.0, 2.0, 2.0]])
    assert losses.code_l2_pull(a, b).item() == pytest.approx((1 + 9) / 2 + 4)


def test_lsgan_losses_over_scales() -> None:
    ones, zeros = [torch.ones(1, 1, 4, 2), torch.ones(1, 1, 2, 1)], [torch.zeros(1, 1, 4, 2), torch.zeros(1, 1, 2, 1)]
    assert losses.lsgan_d(real=ones, fake=zeros).item() == 0.0  # a perfect discriminator
    assert losses.lsgan_g(ones).item() == 0.0  # a perfect generator
    half = [torch.full((1, 1, 4, 2), 0.5), torch.full((1, 1, 2, 1), 0.5)]
    assert losses.lsgan_d(real=half, fake=half).item() == pytest.approx(2 * (0.25 + 0.25))
    assert losses.lsgan_g(zeros).item() == pytest.approx(2.0)


def test_r1_penalty_of_a_linear_discriminator() -> None:
    # D(x) = sum(3 * x) per pixel map -> d sum(D)/dx = 3 everywhere; per-sample sum of squares = 9 * numel.
    x = torch.randn(2, 3, 4, 2, requires_grad=True)
    out = [(3 * x).sum(1, keepdim=True)]
    assert losses.r1_penalty(out, x).item() == pytest.approx(9 * 3 * 4 * 2)
    assert losses.r1_penalty([x.detach().sum(1, keepdim=True) * 0 + x.sum() * 0], x).item() == 0.0


def test_cross_entropy_uniform_logits_is_log_classes() -> None:
    assert losses.cross_entropy(torch.zeros(3, 206), torch.tensor([0, 5, 9])).item() == pytest.approx(math.log(206))


def test_hardest_triplet_zero_and_known_value() -> None:
    labels = torch.tensor([0, 0, 1, 1])
    # Perfect case: positives identical (sim 1), negatives opposite (sim -1): every term is 0.
    e = torch.tensor([[1.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [-1.0, 0.0]])
    assert losses.hardest_triplet(e, labels, e, labels, margin=0.5).item() == pytest.approx(0.0, abs=1e-7)
    # Orthogonal classes: s_pos = 1, s_neg = 0 -> relu(0 + 0.5 - 1) = 0; regulariser (1 + 0)^2 + 0 = 1.
    f = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    assert losses.hardest_triplet(f, labels, f, labels, margin=0.5).item() == pytest.approx(1.0)
    # Hardest mining: anchor 0's positives have sims {1, 0.6}, negatives {0.8, 0}: s_pos 0.6, s_neg 0.8.
    g = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.8, 0.6], [0.0, 1.0]])
    anchor = g[:1]
    expected = max(0.8 + 0.5 - 0.6, 0) + (1 + 0.8) ** 2 + (0.6 - 1) ** 2
    got = losses.hardest_triplet(anchor, labels[:1], g, torch.tensor([0, 0, 1, 1]), margin=0.5)
    assert got.item() == pytest.approx(expected, rel=1e-6)
    s_pos, s_neg = losses.mine_hardest(anchor @ g.t(), labels[:1], torch.tensor([0, 0, 1, 1]))
    assert (s_pos.item(), s_neg.item()) == pytest.approx((0.6, 0.8))
