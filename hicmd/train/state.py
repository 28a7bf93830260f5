"""Everything a bit-exact resume needs besides the weights: random-number states and the rules for which config
fields may change between a checkpoint and the run that resumes it.

`torch.load(weights_only=True)` only reads tensors, containers and plain numbers/strings, so numpy arrays and
python tuples are stored as lists here.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any

import numpy as np
import torch

from hicmd.config import Config
from hicmd.checkpoint import config_mismatch

__all__ = ["rng_state", "set_rng_state", "seed_everything", "resume_mismatch", "weights_digest", "RESUME_FREE",
           "RECOVERY_FIELDS"]

# Train fields that only steer logging, length or placement: changing them on resume cannot change the numbers.
RESUME_FREE = {"iters", "log_every", "sample_every", "save_every", "device", "workers", "max_nonfinite",
               "keep_checkpoints"}
# Fields a user may change to recover from a non-finite stop: the run continues, no longer bit-exactly (logged).
RECOVERY_FIELDS = {"lr_gen", "lr_dis", "lr_id", "lr_alpha", "amp"}


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    version, mt, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": [version, list(mt), gauss],
        "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, mt, gauss = state["python"]
    random.setstate((version, tuple(mt), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def resume_mismatch(saved: dict[str, Any], cfg: Config) -> list[str]:
    """'section.field: checkpoint X != config Y' for every field that would make a resumed run a different run."""
    diffs = config_mismatch(saved, cfg, "model") + config_mismatch(saved, cfg, "loss")
    free = RESUME_FREE | RECOVERY_FIELDS
    return diffs + [d for d in config_mismatch(saved, cfg, "train") if d.split(":")[0][len("train."):] not in free]


def weights_digest(model: torch.nn.Module) -> str:
    """SHA-1 over every parameter and buffer (names and bytes): equal digests mean identical replicas."""
    h = hashlib.sha1()
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
