"""A training folder of SynthVI stills plus footage crops of the same people, for a model that has seen footage.

    python benchmarks/footage_training.py DATA --out FOLDER [--clips 60] [--frames 300] [--every 4] [--min-height 12]
    hicmd train --config tiny --data regdb:FOLDER --no-eval

DATA: a `hicmd synth` folder (RegDB layout, synthvi.json). Its trial-1 training people walk through `--clips` clips
of each rig (`hicmd synth --videos` clips, the universe seed of DATA, so the same people), and every `--every`-th
frame's gt boxes are cut out (hicmd/data/footage.py: tight at the box, every second one jittered like det.txt, from
`--min-height` px). FOLDER/idx lists DATA's stills (FOLDER/stills links to DATA) and the crops (FOLDER/footage)
under the stills' own labels; the test lists are DATA's. The question it serves: how much of the gap between a
model's appearance on stills and on footage (benchmarks/appearance_pairs.py) is the training images' domain.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from hicmd.data.footage import write_crops, write_index
from hicmd.data.synthvi_camera import RIGS
from hicmd.data.synthvi_video import write_videos
from hicmd.data.synthvi_write import REGDB_NAMES


def stills_labels(data: Path) -> dict[int, int]:
    """pid -> label of DATA's training stills (idx lines "Visible/PID/name.png LABEL")."""
    labels = {}
    for line in (data / "idx" / "train_visible_1.txt").read_text().split("\n"):
        if line.strip():
            path, label = line.rsplit(" ", 1)
            labels[int(path.split("/")[1])] = int(label)
    return labels


def build(data: Path, out: Path, clips: int, frames: int, every: int, min_height: int) -> dict[str, int]:
    """Render, cut and index (see the module's docstring); returns how many crops each camera gave."""
    meta = json.loads((data / "synthvi.json").read_text())
    labels = stills_labels(data)
    work = out.with_name(out.name + ".partial")  # renamed into place when complete: a crash leaves no half folder
    shutil.rmtree(work, ignore_errors=True)
    rendered = []
    for rig in RIGS:
        rendered += write_videos(work / "clips" / rig, sorted(labels), seed=int(meta["seed"]), clips=clips,
                                 frames=frames, rig=rig)
    crops = write_crops(rendered, work / "footage", labels, every=every, min_height=min_height)
    (work / "stills").symlink_to(data.resolve(), target_is_directory=True)
    stills = {(stage, cam): [f"stills/{line}" for line in (data / "idx" / f"{stage}_{name}_1.txt").read_text().split(
        "\n") if line.strip()] for stage in ("train", "test") for cam, (_, _, name) in REGDB_NAMES.items()}
    write_index(work, {cam: stills["train", cam] + [f"footage/{line}" for line in crops[cam]] for cam in crops},
                {cam: stills["test", cam] for cam in crops})
    work.rename(out)
    return {cam: len(lines) for cam, lines in crops.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="a `hicmd synth` folder (RegDB layout)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--clips", type=int, default=60, help="clips per rig")
    parser.add_argument("--frames", type=int, default=300, help="RGB frames per clip (10 fps)")
    parser.add_argument("--every", type=int, default=4, help="crops from every n-th frame")
    parser.add_argument("--min-height", type=int, default=12, help="people shorter than this (px) are left out")
    args = parser.parse_args()
    if not (args.data / "synthvi.json").is_file():
        raise SystemExit(f"{args.data}: not a `hicmd synth` folder (no synthvi.json); make one with hicmd synth")
    if args.out.exists():
        raise SystemExit(f"{args.out} exists; choose a new --out (nothing is overwritten)")
    if min(args.clips, args.frames, args.every, args.min_height) < 1:
        raise SystemExit("--clips, --frames, --every and --min-height must be at least 1")
    counts = build(args.data, args.out, args.clips, args.frames, args.every, args.min_height)
    print(f"{args.out}: {counts['rgb']} RGB and {counts['ir']} IR footage crops beside the stills of {args.data}; "
          f"train with: hicmd train --config tiny --data regdb:{args.out} --no-eval")


if __name__ == "__main__":
    main()
