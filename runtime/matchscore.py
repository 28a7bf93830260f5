"""Score cross-modality matches against ground truth (MOTChallenge gt files). Torch-free.

A `match` event pairs an RGB track with an IR track until its `match_lost`. Each track's box is given the
ground-truth id it overlaps (IoU >= 0.5) frame by frame, from the pipeline's --save-tracks files; the match is
correct when, over the frames it was held, both tracks covered the same person in most of them (judged over the
match's span, not the track's life, because an IoU tracker can switch people where they cross). Precision =
correct match events / all match events. Recall = correctly matched (RGB, IR) track pairs / track
pairs of the same id that were both seen over a common span of at least `min_overlap_s`, from confirmation to last
detection (the pairs the pipeline could have matched; a track coasting after its person left cannot be). A person
whose track broke in two must be matched twice, so this is stricter than recall per person; the score card also
gives that one from the ground truth alone (scorecard.py), with the people each correct match followed.
Match events that name the cue that let them in (`cue`) are also counted per cue: how far each cue can be trusted.
Each wrong match is listed (when, by which cue, whom each track followed, how long after the self-calibration in
use was fitted): what tuning the cues starts from.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
from scipy.optimize import linear_sum_assignment

from .detect import read_mot
from .track import iou_matrix

__all__ = ["MatchScore", "read_events", "frame_identities", "majority", "score_matches", "score_run"]


@dataclass(frozen=True)
class MatchScore:
    precision: float  # nan when there was no match event
    recall: float  # nan when no pair could be matched
    matches: int
    correct: int
    positives: int  # same-identity track pairs seen together long enough
    found: int  # of those, matched at least once
    by_cue: dict[str, dict[str, int]] = field(default_factory=dict)  # cue -> {"matches": n, "correct": n}
    wrong: list[dict[str, Any]] = field(default_factory=list)  # every wrong match event: see `_wrong_match`
    people_matched: list[int] = field(default_factory=list)  # the gt ids correct matches followed

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_events(path: str | Path) -> list[dict[str, Any]]:
    """The events of a JSON-lines file; a line that is not a whole event (one a kill or a full disk cut short)
    becomes {"event": "unreadable", "line": n}, which scoring skips and the score card counts."""
    text = Path(path).read_text(errors="replace")  # bytes that are not UTF-8 spoil their line only
    return [_event(line, n) for n, line in enumerate(text.splitlines(), 1) if line.strip()]


_NUMBER, _ID = (int, float), (int,)
# the fields scoring reads from each kind of event, and their types: an event without them (a hand edit, another
# tool's file) is unreadable, not a KeyError halfway through the score
_FIELDS: dict[str, dict[str, tuple[type, ...]]] = {
    "calibration": {"t": _NUMBER},
    "track_new": {"camera": (str,), "track": _ID, "t": _NUMBER},
    "track_end": {"camera": (str,), "track": _ID, "last_seen": _NUMBER},
    "match": {"rgb_track": _ID, "ir_track": _ID, "rgb_frame": _ID, "ir_frame": _ID},
    "match_lost": {"rgb_track": _ID, "ir_track": _ID},
}


def _event(line: str, number: int) -> dict[str, Any]:
    try:
        event = json.loads(line)
    except json.JSONDecodeError:
        event = None
    if not isinstance(event, dict):
        return {"event": "unreadable", "line": number}
    fields = _FIELDS.get(event.get("event"), {})  # type: ignore[arg-type]
    if not all(isinstance(event.get(name), kinds) and not isinstance(event.get(name), bool)
               for name, kinds in fields.items()):
        return {"event": "unreadable", "line": number}
    homography = event.get("homography")
    if homography is not None and not _is_3x3(homography):
        return {"event": "unreadable", "line": number}
    return event


def _is_3x3(value: Any) -> bool:
    return (isinstance(value, list) and len(value) == 3 and all(isinstance(row, list) and len(row) == 3 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in row) for row in value))


def frame_identities(tracks: dict[int, np.ndarray], gt: dict[int, np.ndarray],
                     iou_min: float = 0.5) -> dict[int, dict[int, int | None]]:
    """Track id -> {frame: the gt id its box covers (IoU >= iou_min, one-to-one per frame) or None}."""
    out: dict[int, dict[int, int | None]] = defaultdict(dict)
    for frame, rows in tracks.items():
        ids = rows[:, 5].astype(int)
        for tid in ids:
            out[int(tid)][frame] = None
        truth = gt.get(frame)
        if truth is None or len(truth) == 0:
            continue
        iou = iou_matrix(rows[:, :4], truth[:, :4])
        for r, c in zip(*linear_sum_assignment(-iou)):
            if iou[r, c] >= iou_min:
                out[int(ids[r])][frame] = int(truth[c, 5])
    return dict(out)


def majority(frames: dict[int, int | None], first: int = 0, last: int | None = None,
             share: float = 0.5) -> int | None:
    """The gt id a track covers in most of its frames within [first, last] (None under `share` of them)."""
    window = [gid for frame, gid in frames.items() if frame >= first and (last is None or frame <= last)]
    best = Counter(g for g in window if g is not None).most_common(1)
    return best[0][0] if best and best[0][1] >= share * len(window) else None


def score_matches(events: Iterable[dict[str, Any]], frames_rgb: dict[int, dict[int, int | None]],
                  frames_ir: dict[int, dict[int, int | None]], min_overlap_s: float = 2.0) -> MatchScore:
    """Precision/recall of match events given each track's per-frame gt identity (see module docstring)."""
    ids_rgb = {tid: majority(f) for tid, f in frames_rgb.items()}
    ids_ir = {tid: majority(f) for tid, f in frames_ir.items()}
    life: dict[tuple[str, int], list[float]] = {}
    # open match -> [match event, match_lost event, when the self-calibration in use then was (re)fitted]
    held: dict[tuple[int, int], list[Any]] = {}
    spans: list[list[Any]] = []
    fitted: float | None = None
    for ev in events:
        kind = ev.get("event")
        if kind == "calibration":
            fitted = ev["t"] if ev.get("status") in ("fitted", "refitted") else None
        elif kind == "track_new":
            life[ev["camera"], ev["track"]] = [ev["t"], ev["t"]]
        elif kind == "track_end" and (ev["camera"], ev["track"]) in life:
            life[ev["camera"], ev["track"]][1] = ev["last_seen"]
        elif kind == "match":
            held[ev["rgb_track"], ev["ir_track"]] = span = [ev, {}, fitted]
            spans.append(span)
        elif kind == "match_lost" and (ev["rgb_track"], ev["ir_track"]) in held:
            held.pop((ev["rgb_track"], ev["ir_track"]))[1] = ev
    good, wrong, people = [], [], set()
    by_cue: dict[str, dict[str, int]] = {}
    for start, end, fit_t in spans:  # right when both tracks followed the same person while the match was held
        r, i = start["rgb_track"], start["ir_track"]
        who_r = majority(frames_rgb.get(r, {}), start["rgb_frame"], end.get("rgb_frame"))
        who_i = majority(frames_ir.get(i, {}), start["ir_frame"], end.get("ir_frame"))
        right = who_r is not None and who_r == who_i
        if right:
            good.append((r, i))
            people.add(who_r)
        else:
            wrong.append(_wrong_match(start, who_r, who_i, fit_t))
        if "cue" in start:
            tally = by_cue.setdefault(start["cue"], {"matches": 0, "correct": 0})
            tally["matches"] += 1
            tally["correct"] += int(right)
    positives = set()
    for (cam_r, r), (a0, a1) in life.items():
        if cam_r != "rgb" or ids_rgb.get(r) is None:
            continue
        for (cam_i, i), (b0, b1) in life.items():
            if cam_i == "ir" and ids_ir.get(i) == ids_rgb[r] and min(a1, b1) - max(a0, b0) >= min_overlap_s:
                positives.add((r, i))
    found = positives & set(good)
    return MatchScore(precision=len(good) / len(spans) if spans else float("nan"),
                      recall=len(found) / len(positives) if positives else float("nan"),
                      matches=len(spans), correct=len(good), positives=len(positives), found=len(found),
                      by_cue=dict(sorted(by_cue.items())), wrong=wrong, people_matched=sorted(people))


def _wrong_match(start: dict[str, Any], who_rgb: int | None, who_ir: int | None,
                 fitted: float | None) -> dict[str, Any]:
    """A wrong match event as the score lists it: the gt person each track followed while it was held (None: no
    one for most of it, e.g. a false detection), and the seconds since the self-calibration in use was (re)fitted
    (None: no fit was in use, or the event has no time)."""
    t = start.get("t")
    return {"t": t, "cue": start.get("cue"), "rgb_track": start["rgb_track"], "ir_track": start["ir_track"],
            "rgb_person": who_rgb, "ir_person": who_ir,
            "after_fit_s": None if fitted is None or t is None else round(t - fitted, 4)}


def score_run(events: str | Path | list[dict[str, Any]], tracks_dir: str | Path, gt_rgb: str | Path,
              gt_ir: str | Path, min_overlap_s: float = 2.0) -> MatchScore:
    """Score a finished `hicmd stream --events E --save-tracks T` run against gt_rgb.txt / gt_ir.txt. `events`: the
    events file, or its events already read (`read_events`)."""
    tracks_dir = Path(tracks_dir)
    frames_rgb = frame_identities(read_mot(tracks_dir / "rgb.txt"), read_mot(gt_rgb))
    frames_ir = frame_identities(read_mot(tracks_dir / "ir.txt"), read_mot(gt_ir))
    events = read_events(events) if isinstance(events, (str, Path)) else events
    return score_matches(events, frames_rgb, frames_ir, min_overlap_s)
