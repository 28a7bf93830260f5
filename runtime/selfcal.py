"""Online self-calibration of the RGB->IR ground-plane homography from the stream's own observations. Torch-free.

Every RGB x IR pair of people seen at the same moment is a candidate correspondence (those whose appearance
distance is not hopeless). Most are of two different people, but the right ones share one thing the wrong ones
lack: their foot points, taken at the same moment, are related by one homography, frame after frame, wherever the
person walks. The fit is the homography that explains the most track pairs one to one (runtime/consensus.py), from
two or more people, and that what both cameras saw does not refute (runtime/presence.py): two people leave room for
a wrong pairing that fits their paths, and a person only one camera sees can stand in for someone else. When the
best-supported explanation is shown impossible, the next ones are tried: early on, the right one is often second.
The stream announces the fit in a `calibration` event and starts fusing geometry into its association; it refits as
evidence grows, drops a fit that later evidence refutes, and drops one when the people it paired drift off it (a
camera was moved or knocked), going back to appearance + time until a new fit holds.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

from .consensus import MIN_POINTS, Consensus, Key, Memo, TrackPairs, judge, ranked_consensus
from .geometry import Calibration, CalibrationError, Size, fit_calibration, reprojection_errors
from .presence import Presence, PresenceOptions

__all__ = ["NotYet", "SelfCalOptions", "SelfCalibrator"]


class NotYet(CalibrationError):
    """An explanation the evidence does not pin down yet (too few points, one walker, one line), as opposed to one
    it shows impossible (a mirror, people behind the camera, refuted by what both cameras saw)."""


@dataclass(frozen=True)
class SelfCalOptions:
    candidate: float = 1.2  # pairs farther apart in appearance than this are not even candidates
    min_pairs: int = 30  # pairs before the first fit
    # new pairs between refits. 8 rather than 16: a third walker or a better-spread path is taken in sooner (SynthVI
    # separate rig, 96 clips: recall 317 -> 323 of 347, 20 -> 19 wrong matches; bispectrum unchanged), for twice the
    # fits, each 10-35 ms on 2 CPU cores (README, "Refitting every 8 new pairs", "Fits at numpy speed")
    refit_every: int = 8
    every_s: float = 0.2  # one pair per assigned pair at most this often (consecutive frames say little new)
    # IR pixels within which a foot-point pair agrees with a homography. A right pair's feet, under the true map, are
    # off by detector jitter in both cameras: on SynthVI's separate rig median 6 px, 90th percentile 14 px (11k pairs
    # of right matches), so at 8 a third of a right track pair's points disagreed and it barely made the 60 % that
    # counts it explained (one clip never fitted in 30 s). 10: separate rig recall 0.908 -> 0.945, IDF1 0.828 ->
    # 0.841 over 160 clips, bispectrum (median 3-4 px) unchanged; 12 cost the bispectrum rig 3 wrong matches
    # (README, "A wider agreement for foot points")
    ransac_px: float = 10.0
    min_inliers: int = 12
    min_people: int = 2  # inliers from at least this many track pairs: one walker's path leaves H undetermined
    max_stretch: float = 20.0  # a real RGB->IR ground map may scale the two ground directions differently, not 20x
    # inlier foot points' minor/major spread: they must cover an area, not a line. People crossing a place mostly
    # walk one way: on SynthVI's separate rig the right pairs of some clips stayed at 0.03-0.08 for 10 s and more,
    # and fitted within a few px. 0.03 rather than 0.05: 4 more clips of 312 within 5 px by 20 s, bispectrum sets
    # meeting the targets 24 -> 26 of 30, separate unchanged at 27 of 48 (7 more right matches, 1 more wrong; README
    # "Foot points that spread to 0.03")
    min_spread_ratio: float = 0.03
    drift_window: int = 16  # recent pairs judged against the current fit
    drift_px: float = 12.0  # median error of the pairs the fit explained above which it is dropped
    # each error less this many standard deviations of where the fit maps that RGB foot (Calibration.uncertainty_px):
    # on SynthVI (no camera ever moves) 23 fits were dropped as "moved" across 212 clips without it, 1 with it
    drift_sigmas: float = 3.0
    patience_s: float = 2.0  # trying this long without a fit before saying so in an event
    border_px: float = 2.0  # boxes this close to the frame edge are cut: their bottom is not the foot
    presence: PresenceOptions = PresenceOptions()  # when who was seen where, and how tall, refutes a fit
    tries: int = 3  # explanations tried, best supported first, past those shown impossible
    first_fit_points: int = 6  # a track pair seen together for fewer foot-point pairs cannot found the first fit: a
    #                            moment leaves room for a wrong map that happens to pass through it
    # a fit from two people whom appearance would pair the other way round waits up to this long (0: not at all).
    # Two walkers' first seconds fit either pairing, and what both cameras saw refutes most swapped fits within
    # 0.5-2 s; waiting for as long as appearance disagreed cost 12 of 990 people. 2 s on SynthVI's separate rig, 71
    # sets: wrong matches 46 -> 36, people found 959 of 990 either way; its 8 fresh sets 7 -> 1 (README, "A
    # two-person fit that appearance contradicts waits 2 s")
    swap_hold_s: float = 2.0


class SelfCalibrator:
    def __init__(self, rgb_size: Size, ir_size: Size, opts: SelfCalOptions = SelfCalOptions()) -> None:
        self.sizes, self.opts = {"rgb": rgb_size, "ir": ir_size}, opts
        self.calibration: Calibration | None = None
        # long enough to remember people who have left: they pin the map where later walkers do not go
        self.pairs: deque[tuple[np.ndarray, np.ndarray, tuple[int, int]]] = deque(maxlen=4000)
        self.recent: deque[float] = deque(maxlen=opts.drift_window)
        self._last: dict[tuple[int, int], float] = {}
        self._fitted_at = 0
        self._failed_said = False
        self._explains: set[tuple[int, int]] = set()  # the track pairs the fit in use takes for one person each
        self._first_try: float | None = None
        self.presence = Presence(opts.presence, opts.ransac_px)
        self._memo: Memo = {}  # couples of track pairs already fitted (runtime/consensus.py)
        self._looks: dict[Key, tuple[float, float]] = {}  # each candidate's latest appearance distance, and when
        self._held: dict[frozenset[Key], float] = {}  # two-person explanations appearance contradicts: since when
        self.fits = self.drops = 0

    def see(self, rgb: Iterable[Any], ir: Iterable[Any], t: float) -> None:
        """Every paired step, with each camera's visible tracks: who was where, to refute wrong fits with."""
        from .fusion import foot

        self.presence.add({cam: [(tr.id, foot(tr), float(tr.box[3] - tr.box[1]), self._whole(tr)) for tr in tracks]
                           for cam, tracks in (("rgb", rgb), ("ir", ir))}, t)

    def observe(self, candidates: Iterable[tuple[Any, Any, float | None]], t: float) -> list[dict[str, Any]]:
        """Take foot-point pairs from this moment's candidate (RGB track, IR track, appearance distance) pairs;
        returns calibration events. A distance of None: one of the two has no embedding yet."""
        from .fusion import foot

        if len(self._last) > 4096:  # a long run meets many track pairs: forget those not seen for a while
            self._last = {k: v for k, v in self._last.items() if t - v < 30.0}
        if len(self._looks) > 4096:
            self._looks = {k: v for k, v in self._looks.items() if t - v[1] < 30.0}
            self._held = {k: v for k, v in self._held.items() if t - v < 30.0}
        for rgb, ir, distance in candidates:
            key = (rgb.id, ir.id)
            if distance is not None:  # not embedded yet says nothing of how alike they look (0 would say "alike")
                self._looks[key] = (distance, t)
            if not (rgb.visible and ir.visible) or (distance is not None and distance > self.opts.candidate):
                continue
            if not (self._whole(rgb) and self._whole(ir)) or t - self._last.get(key, -1e9) < self.opts.every_s:
                continue
            self._last[key] = t
            pair = (foot(rgb), foot(ir), key)
            self.pairs.append(pair)
            if self.calibration is not None and key in self._explains:
                # a pair the fit took for one person: off now, the camera moved (new people, whom a fit from
                # a few walkers may not cover yet, say nothing here: they are what the next refit learns from)
                # a camera that moved is off where the fit is sure; where the fit is a guess (far from the paths it
                # was fitted on) a walker is off by its uncertainty, and that says nothing about the camera
                error = float(reprojection_errors(self.calibration.homography, *pair[:2])[0])
                guess = self.opts.drift_sigmas * float(self.calibration.uncertainty_px(pair[0])[0])
                self.recent.append(max(error - guess, 0.0))
        events = self._check_drift(t)
        if len(self.pairs) >= self.opts.min_pairs and len(self.pairs) - self._fitted_at >= (
                self.opts.refit_every if self.calibration is not None else 1):
            events += self._fit(t)
        return events

    def _whole(self, track: Any) -> bool:
        w, h = self.sizes[track.camera]
        x1, y1, x2, y2 = (float(v) for v in track.box)
        b = self.opts.border_px
        return x1 > b and y1 > b and x2 < w - b and y2 < h - b

    def _track_pairs(self) -> TrackPairs:
        grouped: dict[tuple[int, int], list[tuple[np.ndarray, np.ndarray]]] = {}
        for rgb, ir, key in self.pairs:
            grouped.setdefault(key, []).append((rgb, ir))
        out = {}
        for key, points in grouped.items():  # a long-seen pair is thinned, evenly: bounded work per fit
            points = [points[j] for j in np.linspace(0, len(points) - 1, min(len(points), 40)).round().astype(int)]
            out[key] = (np.stack([p[0] for p in points]), np.stack([p[1] for p in points]))
        return out

    def _fit(self, t: float) -> list[dict[str, Any]]:
        self._fitted_at = len(self.pairs)
        events = []
        refuted = None if self.calibration is None else self.presence.refutes(
            self.calibration.homography, uncertainty=self.calibration.uncertainty_px)
        if refuted is not None:  # the evidence since the fit says it is wrong: stop using it, look for the right one
            self.calibration, self._explains, self.drops = None, set(), self.drops + 1
            self.recent.clear()
            events.append({"event": "calibration", "t": round(t, 4), "status": "dropped", "source": "self",
                           "reason": f"the fit is refuted: {refuted}", "cues": "appearance+time"})
        return events + self._try_fit(t)

    def _try_fit(self, t: float) -> list[dict[str, Any]]:
        pairs = self._track_pairs()
        try:
            fit, found = self._first_that_holds(pairs, t)
        except CalibrationError as exc:
            self._first_try = t if self._first_try is None else self._first_try
            if self.calibration is None and not self._failed_said and t - self._first_try >= self.opts.patience_s:
                self._failed_said = True  # said once; it keeps trying as pairs come in
                return [{"event": "calibration", "t": round(t, 4), "status": "unfitted", "source": "self",
                         "reason": str(exc), "pairs": len(self.pairs), "cues": "appearance+time"}]
            return []
        verdict = judge(fit.homography, pairs, self.opts.ransac_px)
        if self.calibration is not None:  # a refit must explain the evidence, one to one, at least as well
            if verdict.support < judge(self.calibration.homography, pairs, self.opts.ransac_px).support:
                return []
        status = "fitted" if self.calibration is None else "refitted"
        self.calibration, self.fits = fit, self.fits + 1
        self._explains = set(verdict.keys)
        return [{"event": "calibration", "t": round(t, 4), "status": status, "source": "self",
                 "reprojection_px": round(fit.reprojection_px, 3), "inliers": fit.inliers, "pairs": len(self.pairs),
                 "people": len(found.keys), "tracks": [[int(r), int(i)] for r, i in verdict.keys],
                 "homography": [[round(v, 8) for v in row] for row in fit.homography.tolist()]}]

    def _first_that_holds(self, pairs: TrackPairs, t: float) -> tuple[Calibration, Consensus]:
        """The best-supported explanation that passes every check (CalibrationError: why the best one failed).
        While two or three people have walked, a wrong pairing can explain more foot points than the right one;
        when the checks show it impossible, the right one is often next. One the evidence merely does not pin down
        yet stops the search: it is most likely right, and the runner-up its rival (two walkers swapped)."""
        # a refit must also explain the evidence at least as well as the fit in use: any track pair may add to it
        points = self.opts.first_fit_points if self.calibration is None else MIN_POINTS
        ranked = ranked_consensus(pairs, self.opts.ransac_px, min_points=points, memo=self._memo)
        if not ranked:
            raise CalibrationError("no homography explains two people seen by both cameras yet")
        refused: CalibrationError | None = None
        for found in ranked[:max(1, self.opts.tries)]:
            try:
                return self._checked_fit(found, t), found
            except NotYet as exc:  # most likely the right explanation, early: a runner-up now is its rival
                raise refused or exc
            except CalibrationError as exc:  # shown impossible: the next one may be right
                refused = refused or exc
        assert refused is not None
        raise refused

    def _checked_fit(self, found: Consensus, t: float) -> Calibration:
        try:
            fit = fit_calibration(found.rgb, found.ir, self.sizes["rgb"], self.sizes["ir"], self.opts.ransac_px)
        except CalibrationError as exc:  # its points do not pin a homography down
            raise NotYet(str(exc)) from None
        self._check(fit, found, t)
        return fit

    def _check(self, fit: Calibration, found: Consensus, t: float) -> None:
        """Refuse fits that wrong pairs can produce: too few agreeing points, one walker only, a mirror, a squashed
        or one-line ground, one that what both cameras saw refutes, or (for a while) two people whom appearance
        would pair the other way round."""
        rgb = found.rgb
        people = min(len({k[0] for k in found.keys}), len({k[1] for k in found.keys}))
        if fit.inliers < self.opts.min_inliers:
            raise NotYet(f"only {fit.inliers} foot-point pairs agree on one homography")
        if people < self.opts.min_people:
            raise NotYet("the agreeing pairs come from one walker only")
        h = fit.homography
        x, y = rgb.mean(0)
        w = h[2, 0] * x + h[2, 1] * y + h[2, 2]
        jac = (h[:2, :2] * w - np.outer(h[:2] @ [x, y, 1], h[2, :2])) / w**2
        seen = np.stack([p[0] for p in self.pairs])  # every foot the RGB camera saw lies in front of the IR one
        depth = fit.homography[2, :2] @ seen.T + fit.homography[2, 2]
        if not (np.all(depth > 0) or np.all(depth < 0)):
            raise CalibrationError("the fit puts people the RGB camera sees behind the IR camera")
        if np.linalg.det(jac) <= 0:  # the ground seen from above by both cameras keeps its handedness
            raise CalibrationError("the fit mirrors the ground")
        stretch = np.linalg.svd(jac, compute_uv=False)
        if stretch[1] <= 0 or stretch[0] / stretch[1] > self.opts.max_stretch:
            raise NotYet("the fit squashes the ground along one direction: the pairs do not span it yet")
        spread = np.linalg.eigvalsh(np.cov(rgb.T))
        if spread[0] < self.opts.min_spread_ratio**2 * spread[1]:
            raise NotYet("the agreeing pairs lie along one line: they do not span the ground yet")
        refuted = self.presence.refutes(fit.homography, found.keys, fit.uncertainty_px)
        if refuted is not None:
            raise CalibrationError(f"the fit is refuted: {refuted}")
        if self._appearance_swaps(found.keys):
            since = self._held.setdefault(frozenset(found.keys), t)
            if t - since < self.opts.swap_hold_s:
                raise NotYet("appearance would pair its two people the other way round")

    def _appearance_swaps(self, keys: tuple[Key, ...]) -> bool:
        """Do two people's latest cross-camera appearance distances add up to less paired the other way round?"""
        if len(keys) != 2 or self.opts.swap_hold_s <= 0:
            return False
        (rgb_a, ir_a), (rgb_b, ir_b) = keys
        looks = [self._looks.get(k) for k in ((rgb_a, ir_a), (rgb_b, ir_b), (rgb_a, ir_b), (rgb_b, ir_a))]
        if None in looks:
            return False
        kept, swapped = looks[0][0] + looks[1][0], looks[2][0] + looks[3][0]
        return swapped < kept

    def _check_drift(self, t: float) -> list[dict[str, Any]]:
        if self.calibration is None or len(self.recent) < self.recent.maxlen:
            return []
        error = float(np.median(self.recent))
        if error <= max(self.opts.drift_px, 3 * self.calibration.reprojection_px):
            return []
        self.calibration, self.drops = None, self.drops + 1
        # pairs from before the camera moved describe the old view. Who was seen where is kept: the fits this drops
        # are more often wrong ones than moved cameras, and that is the evidence that refutes them (it ages out)
        self.pairs.clear()
        self.recent.clear()
        self._fitted_at, self._failed_said, self._first_try, self._explains = 0, False, None, set()
        return [{"event": "calibration", "t": round(t, 4), "status": "dropped", "source": "self",
                 "reason": f"the people it paired are {error:.1f} px off (median of the last "
                           f"{self.opts.drift_window}): a camera moved?",
                 "cues": "appearance+time"}]
