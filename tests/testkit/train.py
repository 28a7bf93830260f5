"""Shared pieces of the training tests: the smallest config that keeps every part, and small SynthVI sets."""

from __future__ import annotations

from pathlib import Path

from hicmd.config import Config, load_config

# 80x40 is the smallest 2:1 input the prototype encoder's ASPP (dilation 9 on H/4 x W/4 maps) accepts.
MICRO = [
    "model.height=80", "model.width=40", "model.mlp_dim=32", "model.disc_dim=8", "model.disc_scales=2",
    "model.disc_residual=1", "model.encoder_residual=2", "train.pos_ids=2", "train.neg_ids=2",
    "train.log_every=1", "train.sample_every=1000", "train.save_every=1000", "train.channels_last=false",
    "train.warmup_id=0", "train.gray_p=0", "train.remap_p=0",  # the full D + G iteration, reference augmentation only
]


def micro_config(*extra: str) -> Config:
    return load_config("tiny", [*MICRO, *extra])


def write_synth(root: Path, ids: int = 8, per_id: int = 2, size: tuple[int, int] = (80, 40)) -> Path:
    """A SynthVI set in the RegDB layout (half the identities train, half test)."""
    from hicmd.data.synthvi_write import write_regdb

    write_regdb(root, ids, images_per_modality=per_id, seed=0, size=size)
    return root
