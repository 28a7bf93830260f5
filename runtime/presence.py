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
A person placed where the fit is a guess (far from the paths it was fitted on: its uncertainty there exceeds the
agreement tolerance) refutes nothing, as such a guess neither vouches for nor rules out a pair in the stream
(runtime/fusion.py): a right fit from two walkers is not dropped because it extrapolates badly.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Callable, Iterable

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
    sure_within: float = 1.0  # a placement counts where the fit's uncertainty there is at most this many tolerances


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
        self._cached: tuple[np.ndarray, tuple[_Rows, _Rows]] | None = None  # the steps as arrays (_arrays)

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
        self._cached = None
        while self.steps and t - self.steps[0][0].t > self.opts.span_s:
            self.steps.popleft()

    def refutes(self, homography: np.ndarray, pairs: Iterable[tuple[int, int]] = (),
                uncertainty: Callable[[np.ndarray], np.ndarray] | None = None) -> str | None:
        """Why the RGB->IR `homography` cannot be right, or None: a person it places where the other camera watches
        but sees no one, or (RGB track, IR track) `pairs` it takes for one person each whose heights disagree.
        `uncertainty` (Calibration.uncertainty_px: IR pixels, 1 sigma, at RGB points) tells where the fit is a guess;
        people placed there are not held against it. None: sure everywhere."""
        for src, dst, h in ((0, 1, homography), (1, 0, np.linalg.inv(homography))):
            why = self._refuted_one_way(src, dst, h, uncertainty)
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

    def _refuted_one_way(self, src: int, dst: int, h: np.ndarray,
                         uncertainty: Callable[[np.ndarray], np.ndarray] | None) -> str | None:
        watched = np.array(self._watched[CAMERAS[dst]], np.float32)
        if len(watched) < 3:
            return None
        t, cams = self._arrays()
        here, there = cams[src], cams[dst]
        step, ids = here.step[here.whole], here.ids[here.whole]
        homog = np.c_[here.feet[here.whole], np.ones(len(step))] @ h.T
        ahead = homog[:, 2] > 1e-12  # behind the other camera's horizon: not in its view
        mapped = homog[:, :2] / np.where(ahead, homog[:, 2], 1.0)[:, None]
        placed = ahead & _inside(cv2.convexHull(watched), mapped)
        if uncertainty is not None and placed.any():  # the RGB end of each placement: the source or the mapped foot
            rgb_feet = (here.feet[here.whole] if src == 0 else mapped)[placed]
            placed[placed] = uncertainty(rgb_feet) <= self.opts.sure_within * self.min_px
        step, ids, mapped = step[placed], ids[placed], mapped[placed]
        if not len(ids):
            return None
        # someone there: any person the other camera saw at that step within their `near` of the mapped foot
        near = np.maximum(self.opts.near_heights * there.by_step_heights[step], self.min_px)
        close = np.linalg.norm(there.by_step_feet[step] - mapped[:, None], axis=2) <= near
        found = (close & there.by_step_seen[step]).any(axis=1)
        tracks, first, group = np.unique(ids, return_index=True, return_inverse=True)
        steps, hits = np.bincount(group), np.bincount(group, weights=found).astype(int)
        last = np.full(len(tracks), -np.inf)
        np.maximum.at(last, group, t[step])
        for g in np.argsort(first):  # in the order the tracks were first placed
            if last[g] - t[step[first[g]]] >= self.opts.refute_s and hits[g] < self.opts.refute_ratio * steps[g]:
                return (f"it places the {CAMERAS[src].upper()} camera's track {tracks[g]} where the "
                        f"{CAMERAS[dst].upper()} camera watches, but that camera saw someone there in only {hits[g]} "
                        f"of {steps[g]} steps")
        return None

    def _arrays(self) -> tuple[np.ndarray, tuple[_Rows, _Rows]]:
        """The steps as arrays (each step's time, and per camera every person seen), built once per new step: the
        checks run over the last `span_s` of steps for every explanation a fit tries, at numpy speed."""
        if self._cached is None:
            t = np.array([step[0].t for step in self.steps], np.float64)
            self._cached = t, (_Rows.of([step[0] for step in self.steps]), _Rows.of([step[1] for step in self.steps]))
        return self._cached


@dataclass(frozen=True)
class _Rows:
    """Everyone one camera saw over the steps: a row per person per step, and per step padded to the most people."""
    step: np.ndarray  # (R,) the step of each row
    ids: np.ndarray  # (R,) track ids
    feet: np.ndarray  # (R, 2)
    whole: np.ndarray  # (R,) bool
    by_step_feet: np.ndarray  # (S, K, 2)
    by_step_heights: np.ndarray  # (S, K)
    by_step_seen: np.ndarray  # (S, K) bool: a real row, not padding

    @staticmethod
    def of(seen: list[_Seen]) -> _Rows:
        counts = np.array([len(s.ids) for s in seen], int)
        step = np.repeat(np.arange(len(seen)), counts)
        slot = np.arange(len(step)) - np.repeat(np.cumsum(counts) - counts, counts)  # place within its step
        feet = np.concatenate([s.feet for s in seen]) if seen else np.zeros((0, 2))
        heights = np.concatenate([s.heights for s in seen]) if seen else np.zeros(0)
        shape = (len(seen), max(int(counts.max(initial=0)), 1))
        by_feet, by_heights, by_seen = np.zeros(shape + (2,)), np.zeros(shape), np.zeros(shape, bool)
        by_feet[step, slot], by_heights[step, slot], by_seen[step, slot] = feet, heights, True
        ids = np.array([i for s in seen for i in s.ids], np.int64)
        whole = np.concatenate([s.whole for s in seen]) if seen else np.zeros(0, bool)
        return _Rows(step, ids, feet, whole, by_feet, by_heights, by_seen)


def _inside(hull: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(N,) bool: points inside the convex hull or on its edge (cv2.pointPolygonTest >= 0, for all at once)."""
    corners = hull.reshape(-1, 2).astype(np.float64)
    if len(corners) < 3:  # the watched feet lie on a line: the hull is a segment
        return np.array([cv2.pointPolygonTest(hull, (float(x), float(y)), False) >= 0 for x, y in points], bool)
    edges = np.roll(corners, -1, axis=0) - corners
    side = (edges[:, 0] * (points[:, None, 1] - corners[:, 1]) - edges[:, 1] * (points[:, None, 0] - corners[:, 0]))
    return (side >= 0).all(axis=1) | (side <= 0).all(axis=1)  # a convex polygon: inside is on one side of every edge
