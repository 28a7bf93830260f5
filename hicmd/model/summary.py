"""Parameter and MAC counts per module (what `hicmd info` prints and `hicmd bench` uses for GFLOP/s).

MACs are counted with forward hooks on Conv2d and Linear layers (one multiply-accumulate per weight use);
norms, activations and pooling are left out, as in docs/reference/model.md's figures.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from hicmd.config import ModelConfig
from hicmd.model.hicmd import HiCMD

__all__ = ["ModuleSummary", "count_parameters", "count_macs", "summarise"]


@dataclass(frozen=True)
class ModuleSummary:
    name: str
    parameters: int
    macs: int  # per image


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def count_macs(module: nn.Module, *inputs: torch.Tensor) -> int:
    """MACs of one forward of `module` on `inputs`, divided by the batch size."""
    total = 0

    def hook(layer: nn.Module, args: tuple, out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(layer, nn.Conv2d):
            per_output = layer.in_channels // layer.groups * layer.kernel_size[0] * layer.kernel_size[1]
            total += out.numel() * per_output
        elif isinstance(layer, nn.Linear):
            total += out.numel() * layer.in_features

    handles = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            module(*inputs)
    finally:
        for h in handles:
            h.remove()
    return total // inputs[0].shape[0]


def summarise(cfg: ModelConfig, num_classes: int = 206) -> list[ModuleSummary]:
    """Per-module parameters and MACs for one modality branch plus the shared training-only parts."""
    model = HiCMD(cfg, num_classes).eval()
    x = torch.zeros(1, 3, cfg.height, cfg.width)
    p, a = model.encode(x, "rgb")
    f0 = model.hfl.combine(p, model.layout.part(a, "style"))
    head = nn.Sequential(model.hfl.bottleneck, model.hfl.bn)
    rows = [
        ModuleSummary("prototype encoder (per modality)", count_parameters(model.prototype["rgb"]),
                      count_macs(model.prototype["rgb"], x)),
        ModuleSummary("attribute encoder (per modality)", count_parameters(model.attribute["rgb"]),
                      count_macs(model.attribute["rgb"], x)),
        ModuleSummary("H (layer2 + layer3)" if cfg.backbone.startswith("resnet") else "H (Lite0 blocks 3-10)",
                      count_parameters(model.hfl.h), count_macs(model.hfl.h, p)),
        ModuleSummary("bottleneck Linear + BN", count_parameters(head), count_macs(head, f0)),
        ModuleSummary("alpha", 1, 0),
        ModuleSummary("decoder (shared, training)", count_parameters(model.decoder), count_macs(model.decoder, p, a)),
        ModuleSummary("discriminator (per modality, training)", count_parameters(model.discriminator["rgb"]),
                      count_macs(model.discriminator["rgb"], x)),
        ModuleSummary("classifier + triplet head (training)",
                      count_parameters(model.hfl.classifier) + count_parameters(model.hfl.triplet), 0),
    ]
    path = rows[:4]
    rows.append(ModuleSummary("inference path, one modality (excl. alpha)", sum(r.parameters for r in path),
                              sum(r.macs for r in path)))
    return rows
