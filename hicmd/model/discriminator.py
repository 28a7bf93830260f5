"""Multi-scale LSGAN discriminator D (one per modality; docs/reference/model.md §7, DG-Net MsImageDis layout).

Each scale is a small fully convolutional net with no normalisation that outputs a map of patch logits;
between scales the image is downsampled by AvgPool2d(3, 2, 1, count_include_pad=False).
The losses live in hicmd.losses (pure functions of the patch maps).
"""

from __future__ import annotations

from torch import Tensor, nn

from hicmd.config import ModelConfig
from hicmd.model.blocks import ConvBlock, ResBlock

__all__ = ["MultiScaleDiscriminator"]


def _scale_net(dim: int, residual: int, slope: float) -> nn.Sequential:
    return nn.Sequential(
        ConvBlock(3, dim, 1, slope=slope),
        ConvBlock(dim, dim, 3, 1, 1, slope=slope),
        ConvBlock(dim, dim, 3, 2, 1, slope=slope),
        ConvBlock(dim, dim, 3, 1, 1, slope=slope),
        ConvBlock(dim, 2 * dim, 3, 2, 1, slope=slope),
        *[ResBlock(2 * dim, "none", slope) for _ in range(residual)],
        nn.Conv2d(2 * dim, 1, 1),
    )


class MultiScaleDiscriminator(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.nets = nn.ModuleList(
            [_scale_net(cfg.disc_dim, cfg.disc_residual, cfg.slope) for _ in range(cfg.disc_scales)]
        )
        self.down = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)
        for m in self.modules():  # reference: gaussian init N(0, 0.02)
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> list[Tensor]:
        """Image (N, 3, H, W) -> one patch-logit map per scale (N, 1, H/4, W/4), (N, 1, H/8, W/8), ..."""
        outputs = []
        for net in self.nets:
            outputs.append(net(x))
            x = self.down(x)
        return outputs
