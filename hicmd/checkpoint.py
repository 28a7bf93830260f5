"""Checkpoints: one file per save, written atomically, read with `torch.load(weights_only=True)`.

Contents: {"format": "hicmd-checkpoint", "version": 1, "config": <config dict>, "num_classes": int,
"model": state_dict, "iteration": int, ...trainer state (optimizers, schedulers, rng)}. Only tensors, dicts,
lists and plain numbers/strings go in, so no arbitrary pickle is ever needed to read one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from hicmd.config import Config, config_from_dict, config_to_dict
from hicmd.errors import HicmdError
from hicmd.runtime.atomic import write_atomically

__all__ = ["CheckpointError", "save_checkpoint", "load_checkpoint", "load_model", "config_mismatch"]

FORMAT = "hicmd-checkpoint"
VERSION = 1


class CheckpointError(HicmdError, ValueError):
    """A checkpoint file that is missing, unreadable, or made for another config."""


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write `state` to `path` atomically (temp file in the same folder + fsync + rename): a crash mid-save
    leaves the previous file intact."""
    state = {"format": FORMAT, "version": VERSION, **state}
    return write_atomically(path, lambda fh: torch.save(state, fh))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():  # a run folder given for its checkpoint: the commonest slip
        hint = f" (e.g. {path / 'last.pt'})" if (path / "last.pt").is_file() else ""
        raise CheckpointError(f"checkpoint {path} is a folder: give the .pt file in it{hint}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path} is not a readable checkpoint ({type(exc).__name__}: {str(exc)[:120]}); "
                              "for the authors' files use 'hicmd convert-original'") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a hicmd checkpoint; for the authors' gen_*.pt / id_*.pt files "
                              "run 'hicmd convert-original' first")
    if state.get("version") != VERSION:
        raise CheckpointError(f"{path} has checkpoint version {state.get('version')}; this hicmd reads {VERSION}")
    missing = [key for key in ("config", "num_classes", "model") if key not in state]
    if missing:
        raise CheckpointError(f"{path} lacks {', '.join(missing)}: it is incomplete or not written by hicmd; use a "
                              "checkpoint a training run saved (runs/NAME/last.pt)")
    train = state["config"].get("train") if isinstance(state["config"], dict) else None
    if isinstance(train, dict):
        # checkpoints from before train.hfl_batch existed were trained with the batched HFL forward
        train.setdefault("hfl_batch", "batched")
    return state


def config_mismatch(saved: dict[str, Any], cfg: Config, section: str = "model") -> list[str]:
    """Fields of `section` that differ between a checkpoint's config and `cfg` ('field: saved != wanted')."""
    want = config_to_dict(cfg)[section]
    have = saved.get(section, {})
    return [f"{section}.{k}: checkpoint {have.get(k)!r} != config {v!r}" for k, v in want.items() if have.get(k) != v]


def load_model(path: str | Path, device: str | torch.device = "cpu"):
    """Build the model a checkpoint describes and load its weights. Returns (HiCMD in eval mode, Config)."""
    from hicmd.model import HiCMD

    state = load_checkpoint(path)
    try:
        cfg = config_from_dict(state["config"])
        num_classes = int(state["num_classes"])
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path} holds an unusable config ({exc})") from None
    model = HiCMD(cfg.model, num_classes)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit the config stored in it "  # torch's text: one line
                              f"({' '.join(str(exc).split())[:200]})") from None
    return model.to(device).eval(), cfg
