"""Person crops cut from SynthVI clips at their ground-truth boxes: re-id training images that look like what the
stream embeds (20-60 px people cut tight at a detector's box), not like the 128x64 stills of `hicmd synth`.

A model trained on the stills alone prefers the right pairing of two held-out people on footage 75 % of the time,
with footage crops of its training people added 86 %, trained three times as long 92-95 % (README, "Appearance
trained on footage crops"). `hicmd synth --footage N` adds such crops to a SynthVI folder's training list
(`add_footage`); the stream test fixture trains on crops of the people it then watches (tests/testkit).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np

from hicmd.data.synthvi_write import REGDB_NAMES
from hicmd.runtime.atomic import write_atomically
from hicmd.runtime.detect import read_mot

__all__ = ["FOOTAGE_SUMMARY", "add_footage", "cut_people", "write_crops"]

FOOTAGE_SUMMARY = "footage.json"  # written last by add_footage: its presence means the crops are all listed


def cut_people(clip: Path, every: int = 1, min_height: int = 40, jitter: float = 0.05,
               rng: np.random.Generator | None = None,
               keep: Callable[[int], bool] = lambda pid: True) -> Iterator[tuple[str, int, int, np.ndarray]]:
    """(camera, frame, person, BGR crop) for every `every`-th frame's gt boxes of a clip, every second such frame's
    boxes jittered by `jitter` of the box per side (Gaussian sigma), as the clips' det.txt boxes are. People under
    `min_height` px (too small to say who they are) and those `keep` refuses are left out."""
    rng = rng if rng is not None else np.random.default_rng(0)
    for cam in REGDB_NAMES:
        gt, capture, frame = read_mot(clip / f"gt_{cam}.txt"), cv2.VideoCapture(str(clip / f"{cam}.mp4")), 0
        try:
            while True:
                ok, image = capture.read()
                if not ok:
                    break
                frame += 1
                if frame % every:
                    continue
                for x1, y1, x2, y2, _, pid in gt.get(frame, []):
                    if y2 - y1 < min_height or not keep(int(pid)):
                        continue
                    if (frame // every) % 2:
                        w, h = x2 - x1, y2 - y1
                        x1, y1, x2, y2 = np.array([x1, y1, x2, y2]) + rng.normal(0, jitter, 4) * [w, h, w, h]
                        x1, y1 = max(0.0, x1), max(0.0, y1)
                    crop = image[int(y1):int(y2), int(x1):int(x2)]
                    if crop.size:  # not jittered off the image
                        yield cam, frame, int(pid), crop
        finally:
            capture.release()


def write_crops(clips: list[Path], out: Path, labels: dict[int, int], every: int = 1, min_height: int = 40,
                jitter: float = 0.05, seed: int = 0) -> dict[str, list[str]]:
    """Cut `labels`' people out of `clips` (`cut_people`) into OUT/Visible|Thermal/PID/. Returns each camera's
    RegDB index lines ("relative/path.png label")."""
    rng = np.random.default_rng(seed)
    lines: dict[str, list[str]] = {"rgb": [], "ir": []}
    for clip in clips:
        for cam, frame, pid, crop in cut_people(clip, every, min_height, jitter, rng, keep=labels.__contains__):
            rel = f"{REGDB_NAMES[cam][0]}/{pid}/{clip.parent.name}_{clip.name}_{frame:04d}.png"
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            if not cv2.imwrite(str(out / rel), crop):
                raise OSError(f"could not write {out / rel}")
            lines[cam].append(f"{rel} {labels[pid]}")
    return lines


def add_footage(data: Path, clips: int, frames: int = 300, every: int = 4, min_height: int = 12,
                progress: Callable[[int], None] | None = None) -> dict[str, int]:
    """Walk the trial-1 training people of the SynthVI folder DATA through `clips` clips of each rig, cut every
    `every`-th frame's people (`write_crops`) into DATA/footage and append them to DATA's trial-1 training lists
    under the stills' labels; DATA/footage.json, written last, records it. Returns each camera's crop count.

    The clips only serve the cutting and are deleted. The crops are staged in DATA/footage.partial and the lists
    rewritten after the rename, so a run stopped halfway leaves the stills' lists as `write_regdb` wrote them."""
    from hicmd.data.synthvi_camera import RIGS
    from hicmd.data.synthvi_video import write_videos

    meta = json.loads((data / "synthvi.json").read_text())
    labels = {pid: label for label, pid in enumerate(meta["trials"]["1"]["train"])}  # write_regdb's labels
    (data / FOOTAGE_SUMMARY).unlink(missing_ok=True)
    work, final = data / "footage.partial", data / "footage"
    shutil.rmtree(work, ignore_errors=True)
    rendered = []
    for rig in RIGS:
        rendered += write_videos(work / "clips" / rig, sorted(labels), seed=int(meta["seed"]), clips=clips,
                                 frames=frames, rig=rig, progress=progress)
    crops = write_crops(rendered, work, labels, every=every, min_height=min_height)
    shutil.rmtree(work / "clips")
    shutil.rmtree(final, ignore_errors=True)
    work.rename(final)
    for cam, (_, _, name) in REGDB_NAMES.items():
        stills = (data / "idx" / f"train_{name}_1.txt").read_text().rstrip("\n").split("\n")
        stills = [line for line in stills if not line.startswith("footage/")]  # a list already extended: once
        write_atomically(data / "idx" / f"train_{name}_1.txt",
                         "\n".join(stills + [f"footage/{line}" for line in crops[cam]]) + "\n")
    counts = {cam: len(lines) for cam, lines in crops.items()}
    write_atomically(data / FOOTAGE_SUMMARY, json.dumps(
        {"clips_per_rig": clips, "frames": frames, "every": every, "min_height": min_height, "crops": counts,
         "people": sorted(labels), "trial": 1}, indent=1))
    return counts
