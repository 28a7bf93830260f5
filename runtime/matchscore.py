"""Score cross-modality matches against ground truth (MOTChallenge gt files). Torch-free.

A `match` event pairs an RGB track with an IR track. Each track gets the ground-truth id it overlaps (IoU >= 0.5)
in most of its frames, from the pipeline's --save-tracks files; the match is correct when both tracks got the same
id. Precision = correct match events / all match events. Recall = correctly matched (RGB, IR) track pairs / track
pairs of the same id that lived together at least `min_overlap_s` (the pairs the pipeline could have matched).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np
from scipy.optimize import linear_sum_assignment

from .detect import read_mot
from .track import iou_matrix

__all__ = ["MatchScore", "read_events", "track_identities", "score_matches", "score_run"]


@dataclass(frozen=True)
class MatchScore:
    precision: float  # nan when there was no match event
    recall: float  # nan when no pair could be matched
    matches: int
    correct: int
    positives: int  # same-identity track pairs that overlapped in time
    found: int  # of those, matched at least once

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_events(path: str | Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def track_identities(tracks: dict[int, np.ndarray], gt: dict[int, np.ndarray], iou_min: float = 0.5,
                     majority: float = 0.5) -> dict[int, int | None]:
    """Track id -> the gt id it overlaps in most frames (None when that is under `majority` of its frames)."""
    votes: dict[int, Counter[int]] = defaultdict(Counter)
    lengths: Counter[int] = Counter()
    for frame, rows in tracks.items():
        for tid in rows[:, 5].astype(int):
            lengths[tid] += 1
        truth = gt.get(frame)
        if truth is None or len(truth) == 0:
            continue
        iou = iou_matrix(rows[:, :4], truth[:, :4])
        for r, c in zip(*linear_sum_assignment(-iou)):
            if iou[r, c] >= iou_min:
                votes[int(rows[r, 5])][int(truth[c, 5])] += 1
    out: dict[int, int | None] = {}
    for tid, length in lengths.items():
        best = votes[tid].most_common(1)
        out[tid] = best[0][0] if best and best[0][1] >= majority * length else None
    return out


def score_matches(events: Iterable[dict[str, Any]], ids_rgb: dict[int, int | None], ids_ir: dict[int, int | None],
                  min_overlap_s: float = 2.0) -> MatchScore:
    """Precision/recall of match events given each track's gt identity (see module docstring)."""
    life: dict[tuple[str, int], list[float]] = {}
    matched: list[tuple[int, int]] = []
    for ev in events:
        kind = ev.get("event")
        if kind == "track_new":
            life[ev["camera"], ev["track"]] = [ev["t"], ev["t"]]
        elif kind == "track_end" and (ev["camera"], ev["track"]) in life:
            life[ev["camera"], ev["track"]][1] = ev["t"]
        elif kind == "match":
            matched.append((ev["rgb_track"], ev["ir_track"]))
    good = [(r, i) for r, i in matched if ids_rgb.get(r) is not None and ids_rgb.get(r) == ids_ir.get(i)]
    positives = set()
    for (cam_r, r), (a0, a1) in life.items():
        if cam_r != "rgb" or ids_rgb.get(r) is None:
            continue
        for (cam_i, i), (b0, b1) in life.items():
            if cam_i == "ir" and ids_ir.get(i) == ids_rgb[r] and min(a1, b1) - max(a0, b0) >= min_overlap_s:
                positives.add((r, i))
    found = positives & set(good)
    return MatchScore(precision=len(good) / len(matched) if matched else float("nan"),
                      recall=len(found) / len(positives) if positives else float("nan"),
                      matches=len(matched), correct=len(good), positives=len(positives), found=len(found))


def score_run(events_path: str | Path, tracks_dir: str | Path, gt_rgb: str | Path, gt_ir: str | Path,
              min_overlap_s: float = 2.0) -> MatchScore:
    """Score a finished `hicmd stream --events E --save-tracks T` run against gt_rgb.txt / gt_ir.txt."""
    tracks_dir = Path(tracks_dir)
    ids_rgb = track_identities(read_mot(tracks_dir / "rgb.txt"), read_mot(gt_rgb))
    ids_ir = track_identities(read_mot(tracks_dir / "ir.txt"), read_mot(gt_ir))
    return score_matches(read_events(events_path), ids_rgb, ids_ir, min_overlap_s)
