"""Detector recall / precision against SynthVI ground truth (IoU >= 0.5, one-to-one by Hungarian assignment).

    python benchmarks/detector.py hicmd-demo/data/videos --detector hog
    python benchmarks/detector.py hicmd-demo/data/videos --detector yolov8n.onnx --det-conf 0.25 --det-iou 0.45

Reads every clip folder (rgb.mp4, ir.mp4, gt_rgb.txt, gt_ir.txt from `hicmd synth --videos`) and prints one row per
camera: frames, ground-truth boxes, detections, true positives, precision, recall, ms per frame.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from hicmd.runtime.detect import make_detector, read_mot


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, 4) x (M, 4) x1y1x2y2 -> (N, M)."""
    x1, y1 = np.maximum(a[:, None, 0], b[None, :, 0]), np.maximum(a[:, None, 1], b[None, :, 1])
    x2, y2 = np.minimum(a[:, None, 2], b[None, :, 2]), np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda r: (r[:, 2] - r[:, 0]) * (r[:, 3] - r[:, 1])  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter + 1e-9)


def score(clips: list[Path], detector: str, conf: float | None, nms: float | None, every: int) -> None:
    print(f"{'camera':<7}{'frames':>7}{'gt':>7}{'dets':>7}{'tp':>7}{'precision':>11}{'recall':>8}{'ms/frame':>10}")
    for cam in ("rgb", "ir"):
        det = make_detector(detector, None, conf, nms)
        frames = gt_n = det_n = tp = 0
        seconds = 0.0
        for clip in clips:
            gt = read_mot(clip / f"gt_{cam}.txt")
            cap = cv2.VideoCapture(str(clip / f"{cam}.mp4"))
            index = 0
            while True:
                ok, image = cap.read()
                if not ok:
                    break
                index += 1  # MOTChallenge frames are 1-based
                if (index - 1) % every:
                    continue
                start = time.perf_counter()
                boxes = det.detect(image, index)[:, :4]
                seconds += time.perf_counter() - start
                truth = gt.get(index, np.zeros((0, 6), np.float32))[:, :4]
                frames, gt_n, det_n = frames + 1, gt_n + len(truth), det_n + len(boxes)
                if len(truth) and len(boxes):
                    overlap = iou(truth, boxes)
                    rows, cols = linear_sum_assignment(-overlap)
                    tp += int((overlap[rows, cols] >= 0.5).sum())
        precision, recall = tp / max(det_n, 1), tp / max(gt_n, 1)
        print(f"{cam:<7}{frames:>7}{gt_n:>7}{det_n:>7}{tp:>7}{precision:>11.3f}{recall:>8.3f}"
              f"{1000 * seconds / max(frames, 1):>10.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("videos", type=Path, help="folder of clip folders (hicmd synth --videos output)")
    parser.add_argument("--detector", default="hog", help="hog or a YOLO-style .onnx")
    parser.add_argument("--det-conf", type=float, default=None)
    parser.add_argument("--det-iou", type=float, default=None)
    parser.add_argument("--every", type=int, default=1, help="score every Nth frame")
    args = parser.parse_args()
    clips = sorted(p.parent for p in args.videos.glob("*/gt_rgb.txt")) or [args.videos]
    score(clips, args.detector, args.det_conf, args.det_iou, args.every)


if __name__ == "__main__":
    main()
