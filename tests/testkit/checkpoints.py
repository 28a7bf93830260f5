"""Random hicmd checkpoints for export and evaluation tests."""

from __future__ import annotations

from pathlib import Path

import torch

from hicmd.checkpoint import save_checkpoint
from hicmd.config import config_to_dict
from hicmd.presets import PRESETS
from hicmd.model import HiCMD
from hicmd.modality import MODALITIES

__all__ = ["make_checkpoint"]


def make_checkpoint(path: Path, preset: str = "tiny", seed: int = 0) -> Path:
    """A random HiCMD whose BatchNorms carry non-trivial running statistics and whose alpha is not 0.5."""
    cfg = PRESETS[preset]
    torch.manual_seed(seed)
    model = HiCMD(cfg.model, 12).train()
    m = cfg.model
    with torch.no_grad():
        for scale in (1.0, 2.0):  # a couple of train-mode passes move every BN's running mean/var
            for modality in MODALITIES:
                model.embed(torch.randn(4, 3, m.height, m.width) * scale + 0.3, modality)
        model.hfl.alpha.fill_(0.7)
    save_checkpoint(path, {"config": config_to_dict(cfg), "num_classes": 12, "model": model.state_dict(),
                           "iteration": 3})
    return path
