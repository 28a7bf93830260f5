"""Can the foot points of two people tell which RGB walker is which IR walker? The swapped pairing's homography fit
against the right one's, on SynthVI clips' ground truth.

    python benchmarks/swap_ambiguity.py CLIPS... [--windows 1,2,3,5] [--noise 0] [--out swap.json]

CLIPS: clip folders (clip.json, gt_rgb.txt, gt_ir.txt, as `hicmd synth --videos` writes them) or folders holding
them. For every two people both cameras see at the same time, their foot points (gt box bottoms) over the first W
seconds in which all four boxes are there are fitted with one RGB -> IR homography (least squares, OpenCV), once
paired right and once swapped; it prints, per window, the median reprojection error of each and how often each
pairing's median error is within the self-calibration's agreement tolerance (`SelfCalOptions.ransac_px`): a swapped
pairing within it explains those seconds as well as the right one. `--noise` adds Gaussian pixels to every foot
point (the detector's boxes are off by several). No model, no stream: a property of the scene.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import cv2
import numpy as np

from hicmd.data.synthvi_video import clip_folders
from hicmd.runtime.atomic import write_atomically
from hicmd.runtime.detect import read_mot
from hicmd.runtime.selfcal import SelfCalOptions


def feet(path: Path, per_tick: float) -> dict[int, dict[int, np.ndarray]]:
    """gt file -> {person: {tick: foot point (x, y)}}: the bottom centre of the person's box, at the frames that
    fall on a tick of the slower camera (frame 1 + tick * per_tick, `per_tick` its frames per tick)."""
    out: dict[int, dict[int, np.ndarray]] = {}
    for frame, rows in read_mot(path).items():
        tick = (frame - 1) / per_tick
        if tick != int(tick):
            continue
        for x1, _, x2, y2, _, pid in rows:
            out.setdefault(int(pid), {})[int(tick)] = np.array([(x1 + x2) / 2, y2], np.float64)
    return out


def median_error(src: np.ndarray, dst: np.ndarray) -> float:
    homography, _ = cv2.findHomography(src, dst, 0)
    if homography is None:
        return float("inf")
    mapped = cv2.perspectiveTransform(src.reshape(-1, 1, 2), homography).reshape(-1, 2)
    return float(np.median(np.linalg.norm(mapped - dst, axis=1)))


def clip_pairs(clip: Path, windows: list[float], noise: float, rng: np.random.Generator) -> list[dict]:
    """One record per two people seen by both cameras together: {window: [right error, swapped error]}."""
    info = json.loads((clip / "clip.json").read_text())
    fps = min(info["fps"]["rgb"], info["fps"]["ir"])  # the slower camera's frames, each paired with the other's
    rgb, ir = feet(clip / "gt_rgb.txt", info["fps"]["rgb"] / fps), feet(clip / "gt_ir.txt", info["fps"]["ir"] / fps)
    records = []
    for p, q in itertools.combinations(sorted(set(rgb) & set(ir)), 2):
        frames = sorted(set(rgb[p]) & set(ir[p]) & set(rgb[q]) & set(ir[q]))  # ticks
        if not frames:
            continue
        record = {"clip": str(clip), "people": [p, q]}
        for window in windows:
            chosen = [f for f in frames if f < frames[0] + window * fps]
            if len(chosen) < 0.9 * window * fps:  # not together that long (without a gap)
                continue
            jitter = lambda points: points + rng.normal(0, noise, points.shape)  # noqa: E731
            src = jitter(np.array([rgb[who][f] for who in (p, q) for f in chosen]))
            right = jitter(np.array([ir[who][f] for who in (p, q) for f in chosen]))
            swapped = np.vstack([right[len(chosen):], right[:len(chosen)]])
            record[str(window)] = [median_error(src, right), median_error(src, swapped)]
        records.append(record)
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("clips", nargs="+", type=Path)
    parser.add_argument("--windows", default="1,2,3,5", help="seconds together, comma-separated")
    parser.add_argument("--noise", type=float, default=0.0, help="Gaussian pixels added to every foot point")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="also write every pair's errors to this JSON file")
    args = parser.parse_args()
    windows = [float(w) for w in args.windows.split(",")]
    clips = clip_folders(args.clips)
    if not clips:
        raise SystemExit("no clip folders (with clip.json) under " + ", ".join(map(str, args.clips)))
    rng = np.random.default_rng(args.seed)
    records = [r for clip in clips for r in clip_pairs(clip, windows, args.noise, rng)]
    tolerance = SelfCalOptions().ransac_px
    print(f"{len(clips)} clips, {len(records)} pairs of people seen together by both cameras; noise {args.noise} px; "
          f"agreement tolerance {tolerance} px")
    print("| seconds together | pairs | right pairing: median error (px) | swapped: median error (px) | right "
          f"within {tolerance:g} px | swapped within {tolerance:g} px |")
    print("|---|---|---|---|---|---|")
    for window in windows:
        errors = np.array([r[str(window)] for r in records if str(window) in r]).reshape(-1, 2)
        if not len(errors):
            continue
        right, swapped = np.median(errors, axis=0)
        within = np.mean(errors <= tolerance, axis=0)
        print(f"| {window:g} | {len(errors)} | {right:.1f} | {swapped:.1f} | {within[0]:.0%} | {within[1]:.0%} |")
    if args.out:
        write_atomically(args.out, json.dumps(records, indent=1) + "\n")


if __name__ == "__main__":
    main()
