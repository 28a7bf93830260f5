"""Hierarchical feature learning (HFL) head: H, the alpha combination and the ClassBlock
(docs/reference/model.md §8-9).

    f0 = [alpha * n(H(p)); (1 - alpha) * n(a_s)]          n = L2 normalisation
    f1 = BN1d(Linear(f0))                                  the test feature (L2-normalised at test)
    logits = classifier(dropout(f1)),  f_triplet = Linear(dropout(f1))

H is the backbone's layer2 + layer3 applied to the prototype tensor (it stands in for conv1..layer1), so its
submodules keep torchvision's names and load ImageNet weights by key. With the EfficientNet-Lite0 backbone H is
Lite0's blocks after its stride-4 stage behind a channel adapter (hicmd/model/backbones.py).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hicmd.config import ModelConfig
from hicmd.model.attribute import make_resnet
from hicmd.model.backbones import LiteFeatureEmbedder, is_lite

__all__ = ["FeatureEmbedder", "HFLHead", "HFLOutput"]


class HFLOutput(NamedTuple):
    f0: Tensor  # combined feature (N, E)
    f1: Tensor  # bottleneck feature (N, E), the test embedding before L2 normalisation
    logits: Tensor  # (N, num_classes)
    triplet: Tensor  # (N, h_dim), L2-normalised for the triplet loss


class FeatureEmbedder(nn.Module):
    """H: ResNet layer2 + layer3 on the prototype tensor, then global average pooling."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        net = make_resnet(cfg)
        self.layer2, self.layer3 = net.layer2, net.layer3

    def forward(self, prototype: Tensor) -> Tensor:
        return self.layer3(self.layer2(prototype)).mean(dim=(2, 3))


class HFLHead(nn.Module):
    def __init__(self, cfg: ModelConfig, num_classes: int):
        super().__init__()
        e = cfg.embedding_dim
        self.h = LiteFeatureEmbedder(cfg) if is_lite(cfg.backbone) else FeatureEmbedder(cfg)
        self.alpha = nn.Parameter(torch.tensor(float(cfg.alpha_init)))
        self.bottleneck = nn.Linear(e, e)
        self.bn = nn.BatchNorm1d(e)
        self.dropout = nn.Dropout(cfg.dropout)
        self.classifier = nn.Linear(e, num_classes)
        self.triplet = nn.Linear(e, cfg.h_dim)
        nn.init.kaiming_normal_(self.bottleneck.weight, a=0, mode="fan_out")
        nn.init.zeros_(self.bottleneck.bias)
        nn.init.kaiming_normal_(self.triplet.weight, a=0, mode="fan_out")
        nn.init.zeros_(self.triplet.bias)
        nn.init.normal_(self.bn.weight, 1.0, 0.02)
        nn.init.zeros_(self.bn.bias)
        nn.init.normal_(self.classifier.weight, 0.0, 0.001)
        nn.init.zeros_(self.classifier.bias)

    def combine(self, prototype: Tensor, style: Tensor) -> Tensor:
        """f0 from a prototype tensor and an ID-discriminative attribute a_s."""
        alpha = self.alpha.clamp(max=1.0)
        beta = (1.0 - self.alpha).clamp(min=0.0)
        return torch.cat([alpha * F.normalize(self.h(prototype), dim=1), beta * F.normalize(style, dim=1)], dim=1)

    def embed(self, f0: Tensor) -> Tensor:
        """Test feature: L2-normalised BN(Linear(f0))."""
        return F.normalize(self.bn(self.bottleneck(f0)), dim=1)

    def forward(self, f0: Tensor) -> HFLOutput:
        f1 = self.bn(self.bottleneck(f0))
        dropped = self.dropout(f1)
        return HFLOutput(f0, f1, self.classifier(dropped), F.normalize(self.triplet(dropped), dim=1))

