"""Who each camera saw, where and how tall: the evidence that refutes a wrong ground-plane homography. Torch-free.

Self-calibration from two people is ambiguous: two straight walkers trace paths that a wrong pairing maps onto each
other almost as well as the right one, and a person only one camera sees (outside the other's view, or too far
away for it) can stand in for someone else. Two things the right homography has and a wrong one lacks:
- wherever it places a person inside the part of the ground the other camera watches, that camera sees someone
  there. "The part it watches" is where it has seen people whole (the convex hull of their foot points), not its
  whole image: a person far away is inside the image but too small for a detector, and one cut by the frame edge
  has no foot to compare;
- the people it pairs stand where their heights say. A person's image height is about focal length x stature /
  depth, and the homography's third row at an RGB foot point is the ratio of that spot's depths from the IR and
  the RGB camera, up to one scale (H = G_ir G_rgb^-1 for the ground->image maps G, whose third rows are depths):
  so RGB height / IR height / w is one constant for every person anywhere, under the right homography only.
On SynthVI's separate rig (44 clips, README) the two tests cut the time a wrong fit was in use from 86 s to 8 s.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Iterable

import cv2
import numpy as np

__all__ = ["Presence", "PresenceOptions"]

CAMERAS = ("rgb", "ir")


@dataclass(frozen=True)
class PresenceOptions:
    span_s: float = 30.0  # how far back the evidence goes
    refute_s: float = 1.0  # a person placed in the other camera's watched area over at least this long ...
    refute_ratio: float = 0.5  # ... and found there less than this fraction of the time refutes the fit
    near_heights: float = 0.3  # "found there": someone's foot within this many of their box heights
    height_spread: float = 0.2  # log standard deviation of RGB height / IR height / w above which a fit is refuted


@dataclass(frozen=True)
class _Seen:
    t: float
    ids: list[int]
    feet: np.ndarray  # (n, 2) foot points of the visible tracks
    heights: np.ndarray  # (n,) their box heights
    whole: np.ndarray  # (n,) bool: wholly in the frame (the foot is a foot)


class Presence:
    """Each step's visible people per camera, and the area each camera has seen people whole in."""

    def __init__(self, opts: PresenceOptions = PresenceOptions(), min_px: float = 8.0) -> None:
        self.opts, self.min_px = opts, min_px
        self.steps: deque[tuple[_Seen, _Seen]] = deque(maxlen=4000)
        self._watched: dict[str, deque[np.ndarray]] = {cam: deque(maxlen=2000) for cam in CAMERAS}

    def add(self, people: dict[str, Iterable[tuple[int, np.ndarray, float, bool]]], t: float) -> None:
        """One paired step: per camera, (track id, foot point, box height, wholly in frame) of the visible tracks."""
        seen = []
        for cam in CAMERAS:
            rows = list(people[cam])
            feet = np.array([r[1] for r in rows], np.float64).reshape(-1, 2)
            whole = np.array([r[3] for r in rows], bool)
            seen.append(_Seen(t, [r[0] for r in rows], feet, np.array([r[2] for r in rows], np.float64), whole))
            self._watched[cam].extend(feet[whole])
        self.steps.append((seen[0], seen[1]))
        while self.steps and t - self.steps[0][0].t > self.opts.span_s:
            self.steps.popleft()

    def refutes(self, homography: np.ndarray, pairs: Iterable[tuple[int, int]] = ()) -> str | None:
        """Why the RGB->IR `homography` cannot be right, or None: a person it places where the other camera watches
        but sees no one, or (RGB track, IR track) `pairs` it takes for one person each whose heights disagree."""
        for src, dst, h in ((0, 1, homography), (1, 0, np.linalg.inv(homography))):
            why = self._refuted_one_way(src, dst, h)
            if why is not None:
                return why
        spread = self.height_spread(homography, pairs)
        if spread is not None and spread > self.opts.height_spread:
            return f"the people it pairs are not where their heights say they stand (log spread {spread:.2f})"
        return None

    def height_spread(self, homography: np.ndarray, pairs: Iterable[tuple[int, int]]) -> float | None:
        """The log standard deviation of RGB height / IR height / w over the steps where the (RGB track, IR track)
        `pairs` were both seen whole and the homography put them together (0: everyone stands where their heights
        say; see the module's docstring). None: fewer than 10 such steps."""
        partner = dict(pairs)
        ratios = []
        for rgb, ir in self.steps:
            at_ir = {tid: k for k, tid in enumerate(ir.ids) if ir.whole[k]}
            for k, tid in enumerate(rgb.ids):
                j = at_ir.get(partner.get(tid)) if rgb.whole[k] else None
                if j is None:
                    continue
                p = homography @ [rgb.feet[k, 0], rgb.feet[k, 1], 1.0]
                if p[2] > 1e-12 and np.linalg.norm(p[:2] / p[2] - ir.feet[j]) <= self.min_px:
                    ratios.append(rgb.heights[k] / max(ir.heights[j], 1.0) / p[2])
        return float(np.std(np.log(ratios))) if len(ratios) >= 10 else None

    def _refuted_one_way(self, src: int, dst: int, h: np.ndarray) -> str | None:
        watched = np.array(self._watched[CAMERAS[dst]], np.float32)
        if len(watched) < 3:
            return None
        hull = cv2.convexHull(watched)
        placed: dict[int, list[Any]] = {}  # track id -> [first t, last t, steps placed, steps someone was there]
        for step in self.steps:
            here, there = step[src], step[dst]
            if not here.whole.any():
                continue
            homog = np.c_[here.feet[here.whole], np.ones(int(here.whole.sum()))] @ h.T
            ahead = homog[:, 2] > 1e-12  # behind the other camera's horizon: not in its view
            mapped = homog[:, :2] / np.where(ahead, homog[:, 2], 1.0)[:, None]
            near = np.maximum(self.opts.near_heights * there.heights, self.min_px)
            ids = [i for i, w in zip(here.ids, here.whole) if w]
            for tid, point, front in zip(ids, mapped, ahead):
                if not front or cv2.pointPolygonTest(hull, (float(point[0]), float(point[1])), False) < 0:
                    continue
                found = len(there.feet) and bool((np.linalg.norm(there.feet - point, axis=1) <= near).any())
                entry = placed.setdefault(tid, [step[0].t, step[0].t, 0, 0])
                entry[1], entry[2], entry[3] = step[0].t, entry[2] + 1, entry[3] + int(found)
        for tid, (first, last, steps, found) in placed.items():
            if last - first >= self.opts.refute_s and found < self.opts.refute_ratio * steps:
                return (f"it places the {CAMERAS[src].upper()} camera's track {tid} where the {CAMERAS[dst].upper()} "
                        f"camera watches, but that camera saw someone there in only {found} of {steps} steps")
        return None
