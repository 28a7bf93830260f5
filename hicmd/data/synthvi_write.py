"""Write SynthVI in the RegDB release layout, so the RegDB reader (and any RegDB tool) reads it.

DIR/Visible/<pid>/<sex>_<view>_v_<frame:05d>_<pid>.png and DIR/Thermal/<pid>/..._t_... (gray), and
DIR/idx/{train,test}_{visible,thermal}_{t}.txt for each trial t: "relative/path label" lines, labels re-indexed
0..N-1 within each split as in RegDB. Trial t splits the identities in half at random (seeded); identities
never appear in both halves. Every image has its own seeded generator, so the bytes depend only on the seed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from hicmd.data.synthvi import render
from hicmd.data.synthvi_body import Identity, sample_identity, sample_pose
from hicmd.runtime.atomic import write_atomically

__all__ = ["REGDB_NAMES", "identities", "split_ids", "write_regdb"]

# the RegDB layout per modality: image folder, file-name letter, index-file name
REGDB_NAMES = {"rgb": ("Visible", "v", "visible"), "ir": ("Thermal", "t", "thermal")}


def identities(n: int, seed: int) -> list[Identity]:
    """Identities 1..n of universe `seed` (RegDB-style 1-based person folders)."""
    return [sample_identity(pid, seed) for pid in range(1, n + 1)]


def split_ids(n: int, seed: int, trial: int) -> tuple[list[int], list[int]]:
    """(train pids, test pids) of one trial: a seeded half/half split of 1..n."""
    order = np.random.default_rng([seed, trial, 303]).permutation(np.arange(1, n + 1))
    half = n // 2
    return sorted(int(p) for p in order[:half]), sorted(int(p) for p in order[half:])


def _write_person(out: Path, ident: Identity, modality: str, count: int, seed: int, size: tuple[int, int]) -> list[str]:
    folder, letter, _ = REGDB_NAMES[modality]
    (out / folder / str(ident.pid)).mkdir(parents=True, exist_ok=True)
    rels = []
    for i in range(count):
        rng = np.random.default_rng([seed, ident.pid, 0 if modality == "rgb" else 1, i])
        pose = sample_pose(rng)
        img = render(ident, modality, rng, size[0], size[1], seed=seed, pose=pose)
        view = "back" if pose.view == "back" else "front"
        rel = f"{folder}/{ident.pid}/{ident.sex}_{view}_{letter}_{2 * i + 1:05d}_{ident.pid}.png"
        if img.ndim == 3:
            img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
        cv2.imwrite(str(out / rel), img, [cv2.IMWRITE_PNG_COMPRESSION, 1])
        rels.append(rel)
    return rels


def write_regdb(out: str | Path, ids: int, images_per_modality: int = 10, seed: int = 0, trials: int = 1,
                size: tuple[int, int] = (128, 64), progress: Callable[[int], None] | None = None) -> dict:
    """Render `ids` identities x `images_per_modality` RGB + IR images under `out`; returns the summary that is
    also written to out/synthvi.json. `progress(k)` is called after each identity."""
    if ids < 2:
        raise ValueError(f"SynthVI needs at least 2 identities (one train, one test), got {ids}")
    if images_per_modality < 1 or trials < 1 or min(size) < 16:
        raise ValueError("images_per_modality and trials must be >= 1, and the image at least 16 px a side")
    out = Path(out)
    # the lists and synthvi.json are written last; an earlier render's go first, so that a render stopped halfway
    # over it leaves a folder the readers refuse (no lists), not old lists over a mix of old and new images
    for stale in [out / "synthvi.json", *out.glob("idx/*_visible_*.txt"), *out.glob("idx/*_thermal_*.txt")]:
        stale.unlink(missing_ok=True)
    files: dict[int, dict[str, list[str]]] = {}
    for ident in identities(ids, seed):
        files[ident.pid] = {m: _write_person(out, ident, m, images_per_modality, seed, size) for m in REGDB_NAMES}
        if progress:
            progress(1)
    (out / "idx").mkdir(parents=True, exist_ok=True)
    splits = {}
    for trial in range(1, trials + 1):
        train, test = split_ids(ids, seed, trial)
        splits[trial] = {"train": train, "test": test}
        for stage, pids in (("train", train), ("test", test)):
            for modality, (_, _, name) in REGDB_NAMES.items():
                lines = [f"{rel} {label}" for label, pid in enumerate(pids) for rel in files[pid][modality]]
                write_atomically(out / "idx" / f"{stage}_{name}_{trial}.txt", "\n".join(lines) + "\n")
    summary = {
        "dataset": "SynthVI", "layout": "regdb", "seed": seed, "ids": ids, "images_per_modality": images_per_modality,
        "height": size[0], "width": size[1], "trials": splits,
    }
    write_atomically(out / "synthvi.json", json.dumps(summary, indent=1))  # last: the images and lists are all in
    return summary
