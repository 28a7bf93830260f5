"""Can a model's appearance tell which RGB person is which IR person, when two people are in view together?

    python benchmarks/appearance_pairs.py --model MODEL CLIPS... [--stills DATA] [--seconds 1,3,30] [--out pairs.json]

The question self-calibration faces with two walkers (benchmarks/swap_ambiguity.py: their foot points fit either
pairing), asked of appearance instead. For every two people both cameras of a SynthVI clip see at the same time, the
people are cut out at their ground-truth boxes as the stream cuts them (the box, no margin), every `--every`-th RGB
frame and the IR frames at the same moments, and embedded with the model (ONNX Runtime, FP32); over the first S
seconds in which all four are in view, each person's mean embedding per camera. The right pairing wins when its two
cross-camera cosine distances add up to less than the swapped pairing's. It prints how often it wins per window.
`--stills DATA` asks the same of the held-out test images of a RegDB-layout folder (`hicmd synth` writes one;
1 and 5 random images per person and modality, every two people), the images a model is trained and evaluated on.
No stream, no detector: a property of the model on footage.

CLIPS: clip folders (clip.json, gt_rgb.txt, gt_ir.txt, rgb.mp4, ir.mp4 as `hicmd synth --videos` writes them) or
folders holding them.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from hicmd.data.synthvi_video import clip_folders
from hicmd.runtime.atomic import write_atomically
from hicmd.runtime.detect import read_mot

Embed = Callable[[list[np.ndarray], str], np.ndarray]  # (crops, "rgb" | "ir") -> (N, D) unit embeddings
Looks = dict[tuple[str, int], dict[float, np.ndarray]]  # (camera, person) -> {seconds: embedding}


def clip_looks(clip: Path, embed: Embed, every: int = 2) -> Looks:
    """Every person's embedding per camera at the moments of every `every`-th RGB frame (the IR frames at the same
    moments; SynthVI's IR camera runs at 10 or 5 fps)."""
    meta = json.loads((clip / "clip.json").read_text())
    looks: Looks = {}
    for cam in ("rgb", "ir"):
        fps = meta["fps"][cam]
        boxes = read_mot(clip / f"gt_{cam}.txt")
        video = cv2.VideoCapture(str(clip / f"{cam}.mp4"))
        frame = 0
        while True:
            ok, image = video.read()
            if not ok:
                break
            frame += 1
            t = round((frame - 1) / fps, 3)
            if round(t * meta["fps"]["rgb"]) % every or frame not in boxes:
                continue
            crops, people = [], []
            height, width = image.shape[:2]
            for x1, y1, x2, y2, _, pid in boxes[frame]:
                x1, y1, x2, y2 = max(0, int(x1)), max(0, int(y1)), min(width, round(x2)), min(height, round(y2))
                if x2 - x1 >= 4 and y2 - y1 >= 4:  # the stream's smallest crop
                    crops.append(image[y1:y2, x1:x2])
                    people.append(int(pid))
            if crops:
                for pid, vector in zip(people, embed(crops, cam)):
                    looks.setdefault((cam, pid), {})[t] = vector
        video.release()
    return looks


def _unit(vectors: list[np.ndarray]) -> np.ndarray:
    mean = np.mean(vectors, axis=0)
    return mean / max(float(np.linalg.norm(mean)), 1e-12)


def right_wins(looks: Looks, seconds: list[float]) -> list[dict]:
    """Per two people seen by both cameras at three or more common moments: for each window, whether the right
    pairing's summed cosine distance is below the swapped one's (over the window's mean embeddings)."""
    people = sorted({pid for cam, pid in looks if cam == "rgb"} & {pid for cam, pid in looks if cam == "ir"})
    out = []
    for a, b in itertools.combinations(people, 2):
        common = sorted(set.intersection(*(set(looks[(cam, p)]) for cam in ("rgb", "ir") for p in (a, b))))
        if len(common) < 3:
            continue
        row: dict = {"people": [a, b]}
        for window in seconds:
            moments = [t for t in common if t < common[0] + window]
            mean = {(cam, p): _unit([looks[(cam, p)][t] for t in moments]) for cam in ("rgb", "ir") for p in (a, b)}
            far = lambda r, i: 1.0 - float(mean[("rgb", r)] @ mean[("ir", i)])  # noqa: E731
            row[str(window)] = bool(far(a, a) + far(b, b) < far(a, b) + far(b, a))
        out.append(row)
    return out


def stills_wins(data: Path, embed: Embed, images: int, seed: int = 0) -> tuple[int, int]:
    """(right pairing wins, pairs) over every two held-out identities of a RegDB-layout folder, each person's mean
    embedding of `images` random test images per modality."""
    looks: dict[tuple[str, int], list[np.ndarray]] = {}
    for cam, name in (("rgb", "test_visible_1.txt"), ("ir", "test_thermal_1.txt")):
        rows = [line.split() for line in (data / "idx" / name).read_text().splitlines() if line.strip()]
        vectors = embed([cv2.imread(str(data / path)) for path, _ in rows], cam)
        for (_, label), vector in zip(rows, vectors):
            looks.setdefault((cam, int(label)), []).append(vector)
    rng = random.Random(seed)
    mean = {key: _unit(rng.sample(vectors, min(images, len(vectors)))) for key, vectors in looks.items()}
    people = sorted({pid for _, pid in mean})
    wins = total = 0
    for a, b in itertools.combinations(people, 2):
        far = lambda r, i: 1.0 - float(mean[("rgb", r)] @ mean[("ir", i)])  # noqa: E731
        wins += far(a, a) + far(b, b) < far(a, b) + far(b, a)
        total += 1
    return wins, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clips", nargs="+")
    parser.add_argument("--model", required=True, help="export folder (its FP32 ONNX graphs)")
    parser.add_argument("--stills", help="a RegDB-layout folder: the same question on its held-out test images")
    parser.add_argument("--seconds", default="1,3,30", help="windows from the first moment all four are in view")
    parser.add_argument("--every", type=int, default=2, help="embed every n-th RGB frame (the stream's --embed-every)")
    parser.add_argument("--out", help="write every pair's verdicts here (JSON)")
    args = parser.parse_args()
    from hicmd.runtime.embedder import Embedder

    clips = clip_folders(args.clips)
    if not clips:
        raise SystemExit(f"no clip.json under {', '.join(args.clips)}: give clip folders (hicmd synth --videos)")
    seconds = [float(s) for s in args.seconds.split(",")]
    embedder = Embedder(args.model, backend="onnxruntime", precision="fp32")
    pairs = {str(clip): right_wins(clip_looks(clip, embedder.embed, args.every), seconds) for clip in clips}
    rows = [row for clip_rows in pairs.values() for row in clip_rows]
    print(f"{len(clips)} clips, {len(rows)} pairs of people in view together")
    summary: dict = {"model": str(args.model), "clips": len(clips), "pairs": len(rows), "footage": {}, "stills": {}}
    for window in seconds:
        wins = sum(row[str(window)] for row in rows)
        summary["footage"][str(window)] = wins / max(1, len(rows))
        print(f"footage, first {window:g} s together: the right pairing wins {wins}/{len(rows)} "
              f"= {wins / max(1, len(rows)):.3f}")
    if args.stills:
        for images in (1, 5):
            wins, total = stills_wins(Path(args.stills), embedder.embed, images)
            summary["stills"][str(images)] = wins / max(1, total)
            print(f"stills, {images} image(s) per person: the right pairing wins {wins}/{total} = {wins / total:.3f}")
    if args.out:
        write_atomically(args.out, json.dumps({**summary, "per_clip": pairs}, indent=1))


if __name__ == "__main__":
    main()
