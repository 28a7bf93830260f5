"""Prototype encoder E^p (one per modality): the spatial, ID-related "content" of a person image.

Layout of the reference `ResidualEncoder` (docs/reference/model.md §4): a conv stem downsampling by 4, residual
blocks and ASPP, InstanceNorm without affine, LeakyReLU(0.3), reflect padding. For a 256x128 input and encoder_dim 32
the prototype is [B, 256, 64, 32].
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from hicmd.config import ModelConfig
from hicmd.model.blocks import ConvBlock, ResBlock

__all__ = ["ASPP", "PrototypeEncoder"]


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: a 1x1 branch and three dilated (3, 6, 9) branches, concatenated
    and fused by a 1x1 conv + IN (no activation)."""

    def __init__(self, dim: int, slope: float, dilations: tuple[int, ...] = (3, 6, 9)):
        super().__init__()
        branch = dim // 2
        self.branches = nn.ModuleList([ConvBlock(dim, branch, 1, norm="in", slope=None)])
        for rate in dilations:
            self.branches.append(
                nn.Sequential(
                    ConvBlock(dim, branch, 1, norm="in", slope=slope),
                    ConvBlock(branch, branch, 3, 1, padding=rate, dilation=rate, norm="in", slope=None),
                )
            )
        width = branch * (1 + len(dilations))
        self.fuse = ConvBlock(width, width, 1, norm="in", slope=None)

    def forward(self, x: Tensor) -> Tensor:
        return self.fuse(torch.cat([b(x) for b in self.branches], dim=1))


class PrototypeEncoder(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d, s = cfg.encoder_dim, cfg.slope
        self.stem = nn.Sequential(
            ConvBlock(3, d, 3, 2, 1, norm="in", slope=s),
            ConvBlock(d, 2 * d, 3, 1, 1, norm="in", slope=s),
            ConvBlock(2 * d, 2 * d, 3, 1, 1, norm="in", slope=s),
            ConvBlock(2 * d, 4 * d, 3, 2, 1, norm="in", slope=s),
        )
        self.res = nn.Sequential(*[ResBlock(4 * d, "in", s) for _ in range(cfg.encoder_residual)])
        self.aspp = ASPP(4 * d, s)
        for m in self.modules():  # reference init: kaiming normal (fan_in) on convs, zero bias
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        """(N, 3, H, W) -> prototype (N, 8 * encoder_dim, H/4, W/4)."""
        return self.aspp(self.res(self.stem(x)))
