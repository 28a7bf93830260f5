"""Per-camera tracking on SynthVI clips: how well the stream's IoU tracker keeps each person on one track.

    python benchmarks/tracking.py CLIPS... [--recover 2 --steadiness 0.8]

CLIPS: clip folders (clip.json, det_<cam>.txt, gt_<cam>.txt, as `hicmd synth --videos` writes them) or folders
holding them. Runs the tracker the stream uses (runtime/track.py `IouTracker`, with the stream's defaults: two hits
to confirm, a track ends after 2 s unseen) over each camera's det file, scores its tracks against the camera's
ground truth with motmetrics (IDF1, id switches, MOTA; per-camera ids, so this is the tracker alone: no model, no
cross-camera matching) and prints the mean per rig and camera. Compare tracker settings side by side in one run:
`--recover 0 --steadiness 0.5` is the tracker before c31393e.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from hicmd.data.synthvi_video import clip_folders
from hicmd.runtime.detect import read_mot
from hicmd.runtime.idmetrics import camera_metrics
from hicmd.runtime.options import StreamOptions
from hicmd.runtime.track import camera_tracker


def track_clip(clip: Path, info: dict, camera: str, recover: int, steadiness: float) -> dict[int, np.ndarray]:
    """The tracker's visible confirmed tracks per frame (MOT rows: x1, y1, x2, y2, score, track id); `info`: the
    clip's clip.json."""
    fps, size = info["fps"][camera], tuple(info["sizes"][camera])
    stream = StreamOptions(rgb=None, ir="")  # the stream's own defaults
    tracker = camera_tracker(camera, fps, stream.min_hits, stream.max_lost_s, recover=recover, steadiness=steadiness)
    dets, out = read_mot(clip / f"det_{camera}.txt"), {}
    for frame in range(1, info["frames"][camera] + 1):
        rows = dets.get(frame, np.zeros((0, 6), np.float32))
        tracker.update(rows[:, :5], frame / fps, size)
        shown = [t for t in tracker.confirmed if t.visible]
        if shown:
            out[frame] = np.array([[*t.box, t.score, t.id] for t in shown], np.float32)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("clips", nargs="+")
    parser.add_argument("--recover", type=int, default=2, help="frames a missed person is taken back by nearness")
    parser.add_argument("--steadiness", type=float, default=0.8, help="share of the old velocity kept per step")
    parser.add_argument("--per-clip", action="store_true")
    args = parser.parse_args()
    pooled: dict[tuple[str, str], list[dict]] = {}
    clips = clip_folders(args.clips)
    if not clips:
        raise SystemExit(f"no clip folders (with clip.json) under {' '.join(args.clips)}")
    for clip in clips:
        info = json.loads((clip / "clip.json").read_text())
        for camera in ("rgb", "ir"):
            scores = camera_metrics(read_mot(clip / f"gt_{camera}.txt"),
                                    track_clip(clip, info, camera, args.recover, args.steadiness))
            pooled.setdefault((info["rig"], camera), []).append(scores)
            if args.per_clip:
                print(f"{clip} {camera}: IDF1 {scores['idf1']:.3f}, {scores['id_switches']} id switches")
    print(f"tracker: recover {args.recover}, steadiness {args.steadiness}")
    print("| rig | camera | clips | IDF1 (mean) | IDF1 (lowest) | id switches | MOTA (mean) |")
    print("|---|---|---|---|---|---|---|")
    for (rig, camera), rows in sorted(pooled.items()):
        idf1 = [r["idf1"] for r in rows]
        print(f"| {rig} | {camera} | {len(rows)} | {np.mean(idf1):.3f} | {min(idf1):.3f} | "
              f"{sum(r['id_switches'] for r in rows)} | {np.mean([r['mota'] for r in rows]):.3f} |")


if __name__ == "__main__":
    main()
