"""Shared decoder G: prototype + attribute code -> image (docs/reference/model.md §6).

Four AdaIN residual blocks whose scales and biases come from 8 MLPs (one weight and one bias MLP per attribute
chunk), two nearest-upsample + 5x5 conv + LayerNorm stages, and a linear 3-channel head: the output lives in
ImageNet-normalised pixel space. The attribute code is an explicit forward input, so the decoder exports as is.
"""

from __future__ import annotations

from torch import Tensor, nn

from hicmd.config import ModelConfig
from hicmd.model.blocks import ConvBlock, adain, leaky

__all__ = ["MLP", "AdaINResBlock", "Decoder"]


class MLP(nn.Sequential):
    """Linear + LReLU blocks; the last Linear has no activation."""

    def __init__(self, cin: int, hidden: int, cout: int, blocks: int, slope: float):
        layers: list[nn.Module] = [nn.Linear(cin, hidden), leaky(slope)]
        for _ in range(blocks - 2):
            layers += [nn.Linear(hidden, hidden), leaky(slope)]
        layers.append(nn.Linear(hidden, cout))
        super().__init__(*layers)


class AdaINResBlock(nn.Module):
    """[conv3x3 + AdaIN + LReLU, conv3x3 + AdaIN] + skip, AdaIN parameters given per call."""

    def __init__(self, dim: int, slope: float):
        super().__init__()
        self.conv1 = ConvBlock(dim, dim, 3, 1, 1, slope=None)
        self.conv2 = ConvBlock(dim, dim, 3, 1, 1, slope=None)
        self.act = leaky(slope)

    def forward(self, x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
        """weight, bias: (N, 2 * dim); the first half drives the first AdaIN, the second half the second."""
        dim = x.shape[1]
        h = self.act(adain(self.conv1(x), weight[:, :dim], bias[:, :dim]))
        h = adain(self.conv2(h), weight[:, dim:], bias[:, dim:])
        return x + h


class Decoder(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        dim, s = cfg.prototype_channels, cfg.slope
        self.chunks = cfg.encoder_residual
        chunk = cfg.attribute_dim // self.chunks
        self.blocks = nn.ModuleList([AdaINResBlock(dim, s) for _ in range(self.chunks)])
        self.mlp_w = nn.ModuleList([MLP(chunk, cfg.mlp_dim, 2 * dim, cfg.mlp_blocks, s) for _ in range(self.chunks)])
        self.mlp_b = nn.ModuleList([MLP(chunk, cfg.mlp_dim, 2 * dim, cfg.mlp_blocks, s) for _ in range(self.chunks)])
        self.up = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="nearest"),
            ConvBlock(dim, dim // 2, 5, 1, 2, norm="ln", slope=s),
            nn.Upsample(scale_factor=2, mode="nearest"),
            ConvBlock(dim // 2, dim // 4, 5, 1, 2, norm="ln", slope=s),
        )
        self.head = nn.Sequential(
            ConvBlock(dim // 4, dim // 4, 3, 1, 1, slope=s),
            ConvBlock(dim // 4, dim // 4, 3, 1, 1, slope=s),
            ConvBlock(dim // 4, 3, 1, slope=None),
        )
        for m in self.modules():  # reference: kaiming on every conv and MLP linear of the decoder
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
                nn.init.zeros_(m.bias)

    def forward(self, prototype: Tensor, attribute: Tensor) -> Tensor:
        """prototype (N, C, H/4, W/4), attribute (N, A) -> image (N, 3, H, W)."""
        n = attribute.shape[0]
        chunks = attribute.reshape(n, self.chunks, -1)
        x = prototype
        for k, block in enumerate(self.blocks):
            x = block(x, self.mlp_w[k](chunks[:, k]), self.mlp_b[k](chunks[:, k]))
        return self.head(self.up(x))
