"""Person detectors: OpenCV HOG (default, offline), a YOLO-style ONNX model, or precomputed MOTChallenge files.

Every detector returns an (N, 5) float32 array of [x1, y1, x2, y2, confidence] in frame pixels. Torch-free.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from hicmd.errors import HicmdError

from .backends.onnxruntime import ALLOW_SPINNING

__all__ = ["DetectorError", "Detector", "HogDetector", "OnnxDetector", "FileDetections", "read_mot",
           "parse_yolo", "make_detector"]

EMPTY = np.zeros((0, 5), np.float32)


class DetectorError(HicmdError, ValueError):
    """A detector file that is missing or of a kind we cannot read."""


class Detector(Protocol):
    def detect(self, image: np.ndarray, index: int) -> np.ndarray: ...


def _bgr(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image


class HogDetector:
    """OpenCV's built-in Dalal-Triggs people detector (needs opencv < 5). A CPU fallback, weak on small people."""

    def __init__(self, max_width: int = 400, hit_threshold: float = 0.0, conf_threshold: float = 0.3,
                 iou_threshold: float = 0.5) -> None:
        if not hasattr(cv2, "HOGDescriptor"):
            raise DetectorError("this OpenCV has no HOGDescriptor (OpenCV 5 moved it to contrib); install "
                                "opencv-python-headless<5 or pass --detector model.onnx / --detections-* files")
        self.hog = cv2.HOGDescriptor()
        self.hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
        self.max_width, self.hit_threshold = max_width, hit_threshold
        self.conf_threshold, self.iou_threshold = conf_threshold, iou_threshold

    def detect(self, image: np.ndarray, index: int) -> np.ndarray:
        scale = min(1.0, self.max_width / image.shape[1])
        small = cv2.resize(image, None, fx=scale, fy=scale) if scale < 1.0 else image
        rects, weights = self.hog.detectMultiScale(small, hitThreshold=self.hit_threshold, winStride=(4, 4),
                                                   padding=(8, 8), scale=1.05)
        if len(rects) == 0:
            return EMPTY
        boxes = np.asarray(rects, np.float32) / scale
        scores = 1.0 / (1.0 + np.exp(-np.asarray(weights, np.float32).reshape(-1)))  # SVM margin -> 0..1
        return _nms(np.column_stack([boxes[:, :2], boxes[:, :2] + boxes[:, 2:], scores]), self.conf_threshold,
                    self.iou_threshold)


def _nms(dets: np.ndarray, score_threshold: float, iou_threshold: float) -> np.ndarray:
    if len(dets) == 0:
        return EMPTY
    xywh = np.column_stack([dets[:, :2], dets[:, 2:4] - dets[:, :2]]).tolist()
    keep = cv2.dnn.NMSBoxes(xywh, dets[:, 4].tolist(), score_threshold, iou_threshold)
    return dets[np.asarray(keep, int).reshape(-1)].astype(np.float32) if len(keep) else EMPTY


def parse_yolo(output: np.ndarray, conf_threshold: float = 0.25) -> np.ndarray:
    """Person rows of a YOLO output as [cx, cy, w, h, score] in network-input pixels.

    YOLOv5/v7: (1, N, 5 + classes) with an objectness column; YOLOv8/v11: (1, 4 + classes, N) without one. The
    layouts are told apart by which axis is the long one (N anchors >> channels).
    """
    out = np.asarray(output, np.float32)
    out = out[0] if out.ndim == 3 else out
    if out.shape[0] < out.shape[1]:  # channels first: v8 layout
        rows = out.T
        score = rows[:, 4]
    else:
        rows = out
        score = rows[:, 4] * (rows[:, 5] if rows.shape[1] > 5 else 1.0)
    keep = score >= conf_threshold
    return np.column_stack([rows[keep, :4], score[keep]]).astype(np.float32)


class OnnxDetector:
    """Any YOLO-style ONNX person detector through ONNX Runtime (class 0 = person), letterboxed input."""

    def __init__(self, path: str | Path, conf_threshold: float = 0.25, iou_threshold: float = 0.45) -> None:
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise DetectorError(f"--detector {path}: no such file (give a YOLO-style .onnx person detector)")
        try:
            options = ort.SessionOptions()  # idle threads sleep, as the embedders' do: they run between detections
            options.add_session_config_entry(ALLOW_SPINNING, "0")
            self.session = ort.InferenceSession(str(path), options, providers=ort.get_available_providers())
        except Exception as exc:  # onnxruntime raises its own error types for a bad graph
            raise DetectorError(f"--detector {path}: ONNX Runtime cannot load it ({exc})") from None
        inputs = self.session.get_inputs()
        inp = inputs[0]
        shape = inp.shape
        channels = shape[1] if len(shape) == 4 else None  # a named (symbolic) dimension is left to the graph
        if len(inputs) != 1 or inp.type != "tensor(float)" or len(shape) != 4 or isinstance(channels, int) and \
                channels != 3:
            raise DetectorError(f"--detector {path}: not a YOLO-style person detector (it wants {len(inputs)} "
                                f"input(s), the first {inp.type} {shape}; a detector takes one float image batch "
                                "N x 3 x H x W)")
        self.input_name = inp.name
        self.size = (shape[2] if isinstance(shape[2], int) else 640, shape[3] if isinstance(shape[3], int) else 640)
        self.conf_threshold, self.iou_threshold = conf_threshold, iou_threshold

    def detect(self, image: np.ndarray, index: int) -> np.ndarray:
        image = _bgr(image)
        h, w = image.shape[:2]
        net_h, net_w = self.size
        r = min(net_h / h, net_w / w)
        nh, nw = round(h * r), round(w * r)
        top, left = (net_h - nh) // 2, (net_w - nw) // 2
        canvas = np.full((net_h, net_w, 3), 114, np.uint8)
        canvas[top:top + nh, left:left + nw] = cv2.resize(image, (nw, nh))
        blob = cv2.dnn.blobFromImage(canvas, 1 / 255.0, swapRB=True)
        rows = parse_yolo(self.session.run(None, {self.input_name: blob})[0], self.conf_threshold)
        if len(rows) == 0:
            return EMPTY
        x1 = (rows[:, 0] - rows[:, 2] / 2 - left) / r
        y1 = (rows[:, 1] - rows[:, 3] / 2 - top) / r
        x2 = (rows[:, 0] + rows[:, 2] / 2 - left) / r
        y2 = (rows[:, 1] + rows[:, 3] / 2 - top) / r
        dets = np.column_stack([np.clip(x1, 0, w), np.clip(y1, 0, h), np.clip(x2, 0, w), np.clip(y2, 0, h),
                                rows[:, 4]])
        return _nms(dets, self.conf_threshold, self.iou_threshold)


def read_mot(path: str | Path) -> dict[int, np.ndarray]:
    """MOTChallenge text (frame,id,x,y,w,h,conf,...) -> {frame: (N, 6) [x1, y1, x2, y2, conf, id]}."""
    path = Path(path)
    if not path.is_file():
        raise DetectorError(f"{path}: no such detections file (MOTChallenge text: frame,id,x,y,w,h,conf,...)")
    frames: dict[int, list[np.ndarray]] = {}
    for row in _mot_rows(path):
        conf = row[6] if len(row) > 6 else 1.0
        frames.setdefault(int(row[0]), []).append(
            np.array([row[2], row[3], row[2] + row[4], row[3] + row[5], conf, row[1]], np.float32))
    return {f: np.stack(v) for f, v in frames.items()}


def _mot_rows(path: Path) -> list[list[float]]:
    """The rows of a MOTChallenge file as numbers, each checked: one line naming the line and what is wrong with it
    otherwise (a NaN or an infinite box would fail deep in the pipeline, at the crop)."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError as exc:
        raise DetectorError(f"cannot read {path}: {exc.strerror}") from None
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = [float(cell) for cell in line.split(",")]
        except ValueError:
            raise DetectorError(f"{path} line {number}: not MOTChallenge text (comma-separated numbers "
                                f"frame,id,x,y,w,h,conf,...): {line[:60]!r}") from None
        if len(row) < 6:
            raise DetectorError(f"{path} line {number}: rows need at least frame,id,x,y,w,h")
        if not all(math.isfinite(v) and abs(v) < 1e7 for v in row[:7]) or min(row[4:6]) < 0 or row[0] < 1:
            raise DetectorError(f"{path} line {number}: frame (from 1), x, y, w, h (not negative) and conf must "
                                "be finite numbers under 1e7")
        rows.append(row)
    return rows


class FileDetections:
    """Precomputed detections looked up by the 1-based frame index of the source."""

    def __init__(self, path: str | Path) -> None:
        self.frames = {f: rows[:, :5].copy() for f, rows in read_mot(path).items()}

    def detect(self, image: np.ndarray, index: int) -> np.ndarray:
        return self.frames.get(index, EMPTY)


def check_thresholds(conf: float | None, iou: float | None) -> None:
    if conf is not None and not 0.0 <= conf <= 1.0 or iou is not None and not 0.0 < iou <= 1.0:
        given = " and ".join(f"{flag} {value:g}" for flag, value in (("--det-conf", conf), ("--det-iou", iou))
                             if value is not None)
        raise DetectorError(f"--det-conf must be in 0..1 and --det-iou in (0, 1]; got {given}")


def make_detector(detector: str | None, detections: str | None, conf: float | None = None,
                  iou: float | None = None) -> Detector:
    """Detections file > ONNX model > HOG. `conf` / `iou` (None: the detector's default) are the score and NMS
    overlap thresholds; a detections file is used as it is."""
    check_thresholds(conf, iou)
    thresholds = {k: v for k, v in (("conf_threshold", conf), ("iou_threshold", iou)) if v is not None}
    if detections:
        return FileDetections(detections)
    if detector and detector.lower() != "hog":
        return OnnxDetector(detector, **thresholds)
    return HogDetector(**thresholds)
