"""Which RGB and IR tracks are one person, and the ground homography that says so: a track-level consensus.
Torch-free.

Self-calibration collects foot-point pairs of every RGB x IR pair of people seen at the same moment; most are of two
different people. A point-level RANSAC over all of them can be fooled: two people walking side by side trace
parallel paths, and pairing one with the other fits a homography as well as the truth does. The unit of evidence is
therefore the track pair (an RGB track, an IR track and their simultaneous foot points), and a homography is judged
by how many track pairs it explains *one to one*: a person in one camera is one person in the other, so a wrong
homography that maps one RGB track near two IR tracks gets credit for one of them only. Hypotheses come from every
two compatible track pairs (two people fix the map where they walked), plus a point-level RANSAC over all pairs.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Hashable

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from .geometry import reprojection_errors

__all__ = ["Consensus", "consensus_homography", "ranked_consensus", "judge", "TrackPairs", "MIN_POINTS"]

Key = tuple[Hashable, Hashable]  # (rgb track, ir track)
TrackPairs = dict[Key, tuple[np.ndarray, np.ndarray]]  # key -> (RGB foot points (n, 2), IR foot points (n, 2))
MIN_POINTS = 4  # foot-point pairs a track pair needs to count: a homography takes four


@dataclass(frozen=True)
class Consensus:
    homography: np.ndarray
    keys: tuple[Key, ...]  # the track pairs it explains, one to one
    support: int  # their foot-point pairs within the tolerance
    rgb: np.ndarray  # those foot-point pairs, for the final fit
    ir: np.ndarray


def _explained(h: np.ndarray, pairs: TrackPairs, tol_px: float, agree: float) -> dict[Key, np.ndarray]:
    """Per track pair that the homography explains (most of its points within tol_px): its inlier mask."""
    if not pairs:
        return {}
    sizes = np.array([len(rgb) for rgb, _ in pairs.values()])
    inliers = reprojection_errors(h, np.concatenate([p[0] for p in pairs.values()]),
                                  np.concatenate([p[1] for p in pairs.values()])) <= tol_px  # all at once
    ends = np.cumsum(sizes)
    counts = np.add.reduceat(inliers, ends - sizes)
    keep = (counts >= 3) & (counts / np.maximum(sizes, 1) >= agree)
    parts = np.split(inliers, ends[:-1])
    return {key: part for key, part, kept in zip(pairs, parts, keep) if kept}


def _one_to_one(explained: dict[Key, np.ndarray]) -> list[Key]:
    """The set of explained track pairs, each track used once, with the most inlier points (Hungarian)."""
    rgbs = sorted({k[0] for k in explained}, key=str)
    irs = sorted({k[1] for k in explained}, key=str)
    gain = np.zeros((len(rgbs), len(irs)))
    for (r, i), inlier in explained.items():
        gain[rgbs.index(r), irs.index(i)] = inlier.sum()
    rows, cols = linear_sum_assignment(-gain)
    return [(rgbs[r], irs[c]) for r, c in zip(rows, cols) if gain[r, c] > 0]


def judge(h: np.ndarray, pairs: TrackPairs, tol_px: float, agree: float = 0.6) -> Consensus:
    """The track pairs `h` explains one to one, and how many foot points they give it."""
    explained = _explained(h, pairs, tol_px, agree)
    keys = _one_to_one(explained) if explained else []
    if not keys:
        return Consensus(h, (), 0, np.zeros((0, 2)), np.zeros((0, 2)))
    return Consensus(h, tuple(keys), sum(int(explained[k].sum()) for k in keys),
                     np.concatenate([pairs[k][0][explained[k]] for k in keys]),
                     np.concatenate([pairs[k][1][explained[k]] for k in keys]))


Memo = dict[bytes, np.ndarray | None]  # foot points of a couple of track pairs -> the homography they gave
MEMO_SIZE = 4096  # couples remembered; the oldest is forgotten first


def _couple_homography(src: np.ndarray, dst: np.ndarray, tol_px: float, memo: Memo | None) -> np.ndarray | None:
    """RANSAC on two track pairs' foot points, remembered: between refits many couples are of people who have left
    (whose points no longer change), and OpenCV's RANSAC gives the same answer for the same points (fixed seed)."""
    key = src.tobytes() + dst.tobytes() + np.float64(tol_px).tobytes()
    if memo is not None and key in memo:
        return memo[key]
    h, _ = cv2.findHomography(src, dst, cv2.RANSAC, tol_px, maxIters=200, confidence=0.99)
    h = h if h is not None and np.isfinite(h).all() else None
    if memo is not None:
        if len(memo) >= MEMO_SIZE:  # bounded: forget the oldest
            del memo[next(iter(memo))]
        memo[key] = h
    return h


def _hypotheses(pairs: TrackPairs, tol_px: float, limit: int, rng: np.random.Generator,
                memo: Memo | None = None) -> list[np.ndarray]:
    rgb = np.concatenate([p[0] for p in pairs.values()])
    ir = np.concatenate([p[1] for p in pairs.values()])
    out = []
    h, _ = cv2.findHomography(rgb, ir, cv2.RANSAC, tol_px, maxIters=2000, confidence=0.999)
    if h is not None:
        out.append(h)
    couples = [(a, b) for a, b in combinations(sorted(pairs, key=str), 2) if a[0] != b[0] and a[1] != b[1]]
    if len(couples) > limit:  # bounded work per refit: a random (seeded, so runs repeat) subset
        couples = [couples[j] for j in rng.choice(len(couples), limit, replace=False)]
    for a, b in couples:
        h = _couple_homography(np.concatenate([pairs[a][0], pairs[b][0]]), np.concatenate([pairs[a][1], pairs[b][1]]),
                               tol_px, memo)
        if h is not None:
            out.append(h)
    return out


def consensus_homography(pairs: TrackPairs, tol_px: float, min_points: int = MIN_POINTS, agree: float = 0.6,
                         limit: int = 300, seed: int = 0) -> Consensus | None:
    """The homography that explains the most foot points over track pairs matched one to one (None: no evidence).

    `pairs` maps each (RGB track, IR track) seen together to their simultaneous foot points; pairs with fewer than
    `min_points` are left out. A track pair counts as explained when at least `agree` of its points lie within
    `tol_px` IR pixels of the mapped RGB points."""
    ranked = ranked_consensus(pairs, tol_px, min_points, agree, limit, seed)
    return ranked[0] if ranked else None


def ranked_consensus(pairs: TrackPairs, tol_px: float, min_points: int = MIN_POINTS, agree: float = 0.6,
                     limit: int = 300, seed: int = 0, memo: Memo | None = None) -> list[Consensus]:
    """Every distinct explanation (set of track pairs taken for one person each), the best supported first: while
    few people have walked, a wrong pairing can out-support the right one, and the caller's checks may refuse it.
    `memo`: a dict kept between calls on growing evidence, so a couple's unchanged points are not fitted again."""
    pairs = {k: v for k, v in pairs.items() if len(v[0]) >= min_points}
    if len(pairs) < 2:
        return []
    best: dict[frozenset[Key], Consensus] = {}
    for h in _hypotheses(pairs, tol_px, limit, np.random.default_rng(seed), memo):
        found = judge(h, pairs, tol_px, agree)
        keys = frozenset(found.keys)
        if keys and (keys not in best or found.support > best[keys].support):
            best[keys] = found
    return sorted(best.values(), key=lambda c: -c.support)  # stable: ties keep the order they were found in
