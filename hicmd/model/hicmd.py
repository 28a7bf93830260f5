"""The composite Hi-CMD model, speaking the paper's verbs: encode, decode, embed.

Naming (MUNIT style, as in the trainer): x_a / x_b are RGB / IR images; p_* prototype tensors; s_* attribute
codes; x_ab = decode(p_a, code with b's style): "a's prototype rendered in b's modality".

Ownership (docs/reference/model.md §3): each modality has its own prototype encoder, attribute encoder and
discriminator (the IR ones start as deep copies of the RGB ones); the decoder and the HFL head are shared.
"""

from __future__ import annotations

import copy
from typing import NamedTuple

from torch import Tensor, nn

from hicmd.config import ModelConfig
from hicmd.model.attribute import AttributeEncoder, AttributeLayout
from hicmd.model.backbones import LiteAttributeEncoder, is_lite
from hicmd.model.decoder import Decoder
from hicmd.model.discriminator import MultiScaleDiscriminator
from hicmd.model.embedding import HFLHead, HFLOutput
from hicmd.model.prototype import PrototypeEncoder
from hicmd.modality import MODALITIES

__all__ = ["Codes", "HiCMD", "MODALITIES"]



class Codes(NamedTuple):
    prototype: Tensor  # (N, C, H/4, W/4)
    attribute: Tensor  # (N, A)


def _pair(module: nn.Module) -> nn.ModuleDict:
    return nn.ModuleDict({"rgb": module, "ir": copy.deepcopy(module)})


class HiCMD(nn.Module):
    def __init__(self, cfg: ModelConfig, num_classes: int):
        super().__init__()
        self.cfg = cfg
        self.num_classes = num_classes
        self.layout = AttributeLayout(cfg.attribute_dim, cfg.encoder_residual)
        self.prototype = _pair(PrototypeEncoder(cfg))
        self.attribute = _pair(LiteAttributeEncoder(cfg) if is_lite(cfg.backbone) else AttributeEncoder(cfg))
        self.decoder = Decoder(cfg)
        self.discriminator = _pair(MultiScaleDiscriminator(cfg))
        self.hfl = HFLHead(cfg, num_classes)

    def encode(self, x: Tensor, modality: str) -> Codes:
        """Images (N, 3, H, W), ImageNet-normalised, of one modality -> (prototype, attribute)."""
        _check(modality)
        return Codes(self.prototype[modality](x), self.attribute[modality](x))

    def decode(self, prototype: Tensor, attribute: Tensor) -> Tensor:
        """(prototype, attribute) -> image (N, 3, H, W) in ImageNet-normalised space."""
        return self.decoder(prototype, attribute)

    def identify(self, prototype: Tensor, attribute: Tensor) -> HFLOutput:
        """HFL forward for training: f0, f1, class logits and the triplet feature."""
        return self.hfl(self.hfl.combine(prototype, self.layout.part(attribute, "style")))

    def embed(self, x: Tensor, modality: str) -> Tensor:
        """Test feature (N, embedding_dim), L2-normalised. Call `eval()` first for BN running statistics."""
        p, a = self.encode(x, modality)
        return self.hfl.embed(self.hfl.combine(p, self.layout.part(a, "style")))

    def inference_modules(self, modality: str) -> dict[str, nn.Module]:
        """The parts one modality's embedding path uses (for parameter counts and export)."""
        return {
            "prototype_encoder": self.prototype[modality],
            "attribute_encoder": self.attribute[modality],
            "feature_embedder_h": self.hfl.h,
            "bottleneck": nn.ModuleList([self.hfl.bottleneck, self.hfl.bn]),
        }


def _check(modality: str) -> None:
    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
