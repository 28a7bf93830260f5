"""Building blocks shared by the encoders, decoder and discriminators (MUNIT / DG-Net lineage).

All convolutions pad with reflection, as the reference does. Normalisations are written export-friendly:
AdaIN is instance norm + a per-sample affine (no training-mode batch_norm on a reshaped view, no parameters
assigned at forward time), and the MUNIT LayerNorm always reduces per sample (no batch-size-1 branch).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ConvBlock", "ResBlock", "LayerNorm", "adain", "leaky"]


def leaky(slope: float) -> nn.LeakyReLU:
    return nn.LeakyReLU(slope, inplace=False)


class LayerNorm(nn.Module):
    """MUNIT/DG-Net LayerNorm: per-sample mean and *unbiased* std over C*H*W, eps added to the std,
    then a per-channel affine. Not `nn.LayerNorm` (biased variance, eps inside the sqrt)."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.gamma = nn.Parameter(torch.rand(channels))  # reference init: uniform [0, 1)
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        flat = x.flatten(1)
        n = flat.shape[1]
        mean = flat.mean(1)
        # Unbiased std written out (sum of squares / (n - 1)) so the ONNX graph is plain Reduce/Sqrt ops.
        std = ((flat - mean[:, None]).pow(2).sum(1) / (n - 1)).sqrt()
        y = (x - mean[:, None, None, None]) / (std[:, None, None, None] + self.eps)
        return y * self.gamma[None, :, None, None] + self.beta[None, :, None, None]


def adain(x: Tensor, weight: Tensor, bias: Tensor, eps: float = 1e-5) -> Tensor:
    """Adaptive instance norm: y = w * IN(x) + b with per-sample w, b of shape (N, C).
    The weight is the raw MLP output (no "1 +" offset), as in MUNIT and the reference."""
    return F.instance_norm(x, eps=eps) * weight[:, :, None, None] + bias[:, :, None, None]


class ConvBlock(nn.Sequential):
    """Reflect pad -> conv (with bias) -> optional norm -> optional LeakyReLU."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: int,
        stride: int = 1,
        padding: int = 0,
        dilation: int = 1,
        norm: str = "none",  # none | in | ln
        slope: float | None = 0.3,  # None: no activation
    ):
        layers: list[nn.Module] = []
        if padding:
            layers.append(nn.ReflectionPad2d(padding))
        layers.append(nn.Conv2d(cin, cout, kernel, stride, 0, dilation=dilation, bias=True))
        if norm == "in":
            layers.append(nn.InstanceNorm2d(cout, affine=False, track_running_stats=False))
        elif norm == "ln":
            layers.append(LayerNorm(cout))
        elif norm != "none":
            raise ValueError(f"unknown norm {norm!r}")
        if slope is not None:
            layers.append(leaky(slope))
        super().__init__(*layers)


class ResBlock(nn.Module):
    """[conv3x3 + norm + LReLU, conv3x3 + norm] + identity; no activation after the add."""

    def __init__(self, dim: int, norm: str, slope: float):
        super().__init__()
        self.block = nn.Sequential(
            ConvBlock(dim, dim, 3, 1, 1, norm=norm, slope=slope),
            ConvBlock(dim, dim, 3, 1, 1, norm=norm, slope=None),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.block(x)
