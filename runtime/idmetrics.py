"""Cross-camera identity metrics of a stream run: IDF1 (motmetrics) and HOTA (TrackEval), over both cameras.

Both cameras are scored as one sequence: RGB frame f is timestep f, IR frame f is timestep OFFSET + f. Ground-truth
ids are the people (the same id in both cameras); predicted ids are the global ids the stream showed at each frame
(--save-tracks writes them to <cam>_global.txt). So a person who keeps one global id in both cameras scores as one
identity: IDF1 rewards exactly what `hicmd stream` is for, saying which IR person is which RGB person.

IDF1 comes from motmetrics; HOTA from TrackEval's HOTA class, which is used when the `trackeval` package is
importable (it is installed with --no-deps: its own requirements pull opencv-python, which clashes with the
headless OpenCV the runtime uses). Torch-free.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import numpy as np

from hicmd.modality import MODALITIES

from .detect import read_mot
from .track import iou_matrix

__all__ = ["identity_metrics", "camera_metrics", "hota_available"]

IR_OFFSET = 1_000_000  # IR timesteps after every RGB one, in one sequence


def _steps(gt: dict[int, np.ndarray], pred: dict[int, np.ndarray], offset: int = 0):
    """[(timestep, gt ids, gt boxes xyxy, pred ids, pred boxes)] of one camera's MOT rows by frame."""
    steps = []
    for f in sorted(set(gt) | set(pred)):
        g = gt.get(f, np.zeros((0, 6), np.float32))
        p = pred.get(f, np.zeros((0, 6), np.float32))
        steps.append((offset + f, g[:, 5].astype(int), g[:, :4], p[:, 5].astype(int), p[:, :4]))
    return steps


def _sequence(gt: dict[str, dict[int, np.ndarray]], pred: dict[str, dict[int, np.ndarray]]):
    """The steps of both cameras as one sequence, IR after RGB."""
    return [step for k, cam in enumerate(MODALITIES) for step in _steps(gt[cam], pred[cam], k * IR_OFFSET)]


def hota_available() -> bool:
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # it prints a line per dataset it cannot load
            import trackeval  # noqa: F401
    except ImportError:
        return False
    return True


def _idf1(steps, iou_min: float) -> dict[str, float]:
    import motmetrics as mm

    acc = mm.MOTAccumulator(auto_id=False)
    for t, gid, gbox, pid, pbox in steps:
        dist = 1.0 - iou_matrix(gbox, pbox) if len(gbox) and len(pbox) else np.zeros((len(gbox), len(pbox)))
        dist = np.where(dist > 1.0 - iou_min, np.nan, dist)
        acc.update(gid.tolist(), pid.tolist(), dist, frameid=t)
    summary = mm.metrics.create().compute(acc, metrics=["idf1", "idp", "idr", "mota", "num_switches"], name="run")
    row = summary.loc["run"]
    return {"idf1": float(row["idf1"]), "idp": float(row["idp"]), "idr": float(row["idr"]),
            "mota": float(row["mota"]), "id_switches": int(row["num_switches"])}


def _hota(steps) -> dict[str, float]:
    with contextlib.redirect_stdout(io.StringIO()):
        from trackeval.metrics import HOTA

    gt_map = {v: i for i, v in enumerate(sorted({int(x) for _, g, *_ in steps for x in g}))}
    pr_map = {v: i for i, v in enumerate(sorted({int(x) for _, _, _, p, _ in steps for x in p}))}
    data: dict[str, Any] = {"num_timesteps": len(steps), "num_gt_ids": len(gt_map), "num_tracker_ids": len(pr_map),
                            "num_gt_dets": int(sum(len(g) for _, g, *_ in steps)),
                            "num_tracker_dets": int(sum(len(p) for _, _, _, p, _ in steps)),
                            "gt_ids": [], "tracker_ids": [], "similarity_scores": []}
    for _, g, gbox, p, pbox in steps:
        data["gt_ids"].append(np.array([gt_map[int(x)] for x in g], int))
        data["tracker_ids"].append(np.array([pr_map[int(x)] for x in p], int))
        data["similarity_scores"].append(iou_matrix(gbox, pbox) if len(g) and len(p) else np.zeros((len(g), len(p))))
    res = HOTA().eval_sequence(data)
    return {"hota": float(np.mean(res["HOTA"])), "deta": float(np.mean(res["DetA"])),
            "assa": float(np.mean(res["AssA"]))}


def camera_metrics(gt: dict[int, np.ndarray], pred: dict[int, np.ndarray], iou_min: float = 0.5) -> dict[str, float]:
    """IDF1, IDP, IDR, MOTA and id switches of one camera's tracks against its ground truth (MOT rows by frame,
    as `read_mot` returns them): how well the per-camera tracker keeps each person on one track."""
    return _idf1(_steps(gt, pred), iou_min)


def identity_metrics(tracks_dir: str | Path, clip_dir: str | Path, iou_min: float = 0.5) -> dict[str, Any]:
    """IDF1 (+ IDP, IDR, MOTA, id switches) and, when TrackEval is installed, HOTA / DetA / AssA."""
    tracks_dir, clip_dir = Path(tracks_dir), Path(clip_dir)
    gt = {cam: read_mot(clip_dir / f"gt_{cam}.txt") for cam in MODALITIES}
    pred = {cam: read_mot(tracks_dir / f"{cam}_global.txt") for cam in MODALITIES}
    steps = _sequence(gt, pred)
    out: dict[str, Any] = _idf1(steps, iou_min)
    out.update(_hota(steps) if hota_available() else {"hota": None, "note": "HOTA needs TrackEval: "
                                                      "pip install --no-deps trackeval"})
    return out
