"""One score card for a stream run against a clip's ground truth: match precision / recall, cross-camera IDF1 and
HOTA, and how well and how fast the stream calibrated itself. Behind `hicmd score` and the matching benchmark.

A run folder holds `events.jsonl` and `tracks/` (`hicmd stream --events RUN/events.jsonl --save-tracks RUN/tracks`);
a clip folder holds gt_rgb.txt, gt_ir.txt and, for SynthVI clips, clip.json with the true RGB->IR homography.
Torch-free.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from hicmd.errors import HicmdError
from hicmd.modality import MODALITIES

from .detect import read_mot
from .geometry import Calibration
from .idmetrics import identity_metrics
from .matchscore import read_events, score_run

__all__ = ["ScoreError", "score_card", "calibration_errors", "people_recall"]


class ScoreError(HicmdError, ValueError):
    """A run or clip folder that does not hold what scoring needs."""


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        raise ScoreError(f"{path} not found: {what}")
    return path


def _clip_meta(clip_dir: Path) -> dict[str, Any]:
    """clip.json (a SynthVI clip's rig, frame rates and true homography); {} for a clip without one."""
    clip_json = clip_dir / "clip.json"
    if not clip_json.is_file():
        return {}
    try:
        meta = json.loads(clip_json.read_text(errors="replace"))
    except json.JSONDecodeError as exc:
        raise ScoreError(f"{clip_json} is not valid JSON ({exc.msg}, line {exc.lineno}): render the clip again "
                         "(hicmd synth --videos) or remove it") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("fps", {}), dict):
        raise ScoreError(f"{clip_json} is not a SynthVI clip description: render the clip again or remove it")
    return meta


def _frame_rates(clip_dir: Path, meta: dict[str, Any]) -> dict[str, float] | None:
    """Each camera's frames per second: clip.json's (SynthVI), else the clip's videos', else None."""
    fps = meta.get("fps", {})
    if all(isinstance(fps.get(cam), (int, float)) and fps[cam] > 0 for cam in MODALITIES):
        return {cam: float(fps[cam]) for cam in MODALITIES}
    import cv2

    rates = {}
    for cam in MODALITIES:
        video = cv2.VideoCapture(str(clip_dir / f"{cam}.mp4"))
        rates[cam] = float(video.get(cv2.CAP_PROP_FPS)) if video.isOpened() else 0.0
        video.release()
    return rates if all(rate > 0 for rate in rates.values()) else None


def people_recall(clip_dir: Path, matched: set[int], min_overlap_s: float = 2.0,
                  meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """The issue's recall, from the ground truth alone: of the people both cameras saw over a common span of at
    least `min_overlap_s` (first to last gt box in each), the share a correct match followed (`matched`). None
    where the clip's frame rates are unknown (no clip.json, no videos)."""
    rates = _frame_rates(clip_dir, _clip_meta(clip_dir) if meta is None else meta)
    if rates is None:
        return {"people_both": None, "people_found": None, "people_recall": None}
    spans: dict[str, dict[int, tuple[float, float]]] = {}
    for cam in MODALITIES:
        frames: dict[int, list[int]] = {}
        for frame, rows in read_mot(clip_dir / f"gt_{cam}.txt").items():
            for pid in rows[:, 5].astype(int).tolist():
                frames.setdefault(pid, []).append(frame)
        spans[cam] = {pid: ((min(f) - 1) / rates[cam], (max(f) - 1) / rates[cam])  # MOT frames count from 1
                      for pid, f in frames.items()}
    both = {pid for pid, (a0, a1) in spans["rgb"].items() if pid in spans["ir"]
            and min(a1, spans["ir"][pid][1]) - max(a0, spans["ir"][pid][0]) >= min_overlap_s}
    found = len(both & matched)
    return {"people_both": len(both), "people_found": found, "people_recall": found / len(both) if both else math.nan}


def calibration_errors(events: list[dict[str, Any]], clip: dict[str, Any], gt_rgb: dict[int, np.ndarray],
                       ) -> list[tuple[float, float]]:
    """(t, median px error against the true homography) for every homography the run announced, measured on the
    ground-truth RGB foot points of the clip mapped into the IR image."""
    truth = Calibration(np.array(clip["homography_rgb_to_ir"]), tuple(clip["sizes"]["rgb"]),
                        tuple(clip["sizes"]["ir"]), 0.0, 0, 0)
    w, h = clip["sizes"]["ir"]
    if not gt_rgb:  # no one to measure on
        return []
    boxes = np.concatenate([rows[:, :4] for rows in gt_rgb.values()])  # x1, y1, x2, y2
    rgb_w, rgb_h = clip["sizes"]["rgb"]
    whole = (boxes[:, 0] > 2) & (boxes[:, 2] < rgb_w - 2) & (boxes[:, 3] < rgb_h - 2)  # the box bottom is the foot
    feet = np.c_[(boxes[whole, 0] + boxes[whole, 2]) / 2, boxes[whole, 3]]
    want = truth.rgb_to_ir(feet)
    inside = np.isfinite(want).all(1) & (want[:, 0] >= 0) & (want[:, 0] < w) & (want[:, 1] >= 0) & (want[:, 1] < h)
    out = []
    for e in events:
        if e.get("event") == "calibration" and "homography" in e:
            got = Calibration(np.array(e["homography"]), truth.rgb_size, truth.ir_size, 0.0, 0, 0).rgb_to_ir(feet)
            err = np.linalg.norm(got[inside] - want[inside], axis=1)
            err = np.where(np.isfinite(err), err, np.inf)  # mapped behind the horizon: as wrong as it gets
            out.append((float(e["t"]), float(np.median(err)) if len(err) else math.nan))
    return out


def score_card(run: str | Path, clip_dir: str | Path, min_overlap_s: float = 2.0,
               calibrated_px: float = 5.0) -> dict[str, Any]:
    run, clip_dir = Path(run), Path(clip_dir)
    events_path = _need(run / "events.jsonl",
                        "score a run made with --events RUN/events.jsonl --save-tracks RUN/tracks")
    tracks = _need(run / "tracks", "score a run made with --save-tracks RUN/tracks")
    for name in ("gt_rgb.txt", "gt_ir.txt"):
        _need(clip_dir / name, "--gt wants a clip folder with MOTChallenge gt_rgb.txt and gt_ir.txt")
    _need(tracks / "rgb_global.txt", "the run's tracks have no global ids (re-run with this hicmd's stream)")
    events = read_events(events_path)  # read once: matches, cut lines and calibrations all come from it
    match = score_run(events, tracks, clip_dir / "gt_rgb.txt", clip_dir / "gt_ir.txt", min_overlap_s)
    card: dict[str, Any] = {"run": str(run), "clip": str(clip_dir), **{f"match_{k}": v for k, v in
                                                                        match.to_dict().items()}}
    card["events_unreadable"] = sum(e.get("event") == "unreadable" for e in events)  # lines a killed run cut short
    clip = _clip_meta(clip_dir)
    card.update(people_recall(clip_dir, set(match.people_matched), min_overlap_s, clip))
    card.update(identity_metrics(tracks, clip_dir))
    if "homography_rgb_to_ir" in clip:
        gt_rgb = read_mot(clip_dir / "gt_rgb.txt")
        try:
            errors = calibration_errors(events, clip, gt_rgb)
        except (KeyError, TypeError, ValueError):  # the file's own fields: the events' homographies are checked
            raise ScoreError(f"{clip_dir / 'clip.json'}: its homography_rgb_to_ir or sizes are malformed; render the "
                             "clip again") from None
        card["calibration_fits"] = len(errors)
        card["calibration_px"] = errors[-1][1] if errors else None  # the fit in use at the end
        good = [t for t, err in errors if err <= calibrated_px]
        card["calibrated_after_s"] = good[0] if good else None
    return card
