"""Which IR person is which RGB person: the matcher, its cues and the calibration it learns, behind one object.

`CrossView` owns the global ids and confirmed matches (runtime/associate.py), the foot-point history the time cue
needs, and the ground-plane calibration the geometry cue needs: one given by the user (`--calibration`), or one the
stream fits itself from its confident matches (runtime/selfcal.py). Torch-free.
"""

from __future__ import annotations

from typing import Any

from .associate import CrossMatcher, Match
from .fusion import AloneTogether, FootHistory, FusionOptions, Scores, fused_scores
from .geometry import Calibration, Size
from .selfcal import SelfCalibrator, SelfCalOptions
from .track import Track

__all__ = ["CrossView"]


class CrossView:
    def __init__(self, fusion: FusionOptions, confirm: int, calibration: Calibration | None = None,
                 self_calibrate: bool = True, selfcal: SelfCalOptions | None = None) -> None:
        self.fusion, self.fixed = fusion, calibration
        self.history = FootHistory()
        self.alone = AloneTogether(fusion.alone_s)
        self.matcher = CrossMatcher(fusion.appearance_gate, confirm, scorer=self._scores)
        self._selfcal_opts = selfcal or SelfCalOptions()
        self._want_selfcal = self_calibrate and calibration is None and fusion.use_geometry
        self.selfcal: SelfCalibrator | None = None
        self.sizes: dict[str, Size] | None = None
        self._present: tuple[list[Track], list[Track]] = ([], [])  # every live track of this association round

    # the matcher's surface, used by the stream
    @property
    def matches(self) -> dict[tuple[int, int], Match]:
        return self.matcher.matches

    @property
    def total_matches(self) -> int:
        return self.matcher.total_matches

    @property
    def total_lost(self) -> int:
        return self.matcher.total_lost

    def register(self, track: Track) -> None:
        self.matcher.register(track)

    def partner(self, track: Track) -> Match | None:
        return self.matcher.partner(track)

    @property
    def calibration(self) -> Calibration | None:
        """The homography in use now: the user's, or the stream's own fit (None: appearance + time only)."""
        return self.fixed or (self.selfcal.calibration if self.selfcal is not None else None)

    def start(self, sizes: dict[str, Size]) -> None:
        """Called with both cameras' image sizes (width, height) once their first frames are in."""
        self.sizes = sizes
        if self.fixed is not None:
            self.fixed.check_sizes(sizes["rgb"], sizes["ir"])
        if self._want_selfcal and self.selfcal is None:
            self.selfcal = SelfCalibrator(sizes["rgb"], sizes["ir"], self._selfcal_opts)

    def observe(self, tracks: list[Track], t: float) -> None:
        """Every frame of a camera: foot points for the velocity cue."""
        self.history.add(tracks, t)

    def update(self, rgb: list[Track], ir: list[Track], t: float) -> list[dict[str, Any]]:
        """An association round (when fresh embeddings came), over each camera's live tracks: match / match_lost
        events. The matcher scores the visible ones; the hidden ones still count as rivals for the entry cue."""
        self._present = (rgb, ir)
        return self.matcher.update(rgb, ir, t)

    def tick(self, rgb: list[Track], ir: list[Track], t: float) -> list[dict[str, Any]]:
        """Every paired step: every RGB x IR pair of people seen now is a candidate correspondence for
        self-calibration. Most are wrong, but only the right ones agree on one homography across people and time:
        RANSAC keeps those (runtime/selfcal.py). Pairs that look clearly different are left out. And who has been
        alone in both views together (the time cue for lone walkers)."""
        self.alone.update(rgb, ir, t)
        if self.selfcal is None:
            return []
        rgb = [tr for tr in rgb if tr.visible]
        ir = [tr for tr in ir if tr.visible]
        self.selfcal.see(rgb, ir, t)
        pairs = []
        for r in rgb:
            for i in ir:
                known = r.look.embedding is not None and i.look.embedding is not None
                pairs.append((r, i, float(1.0 - r.look.embedding @ i.look.embedding) if known else None))
        return self.selfcal.observe(pairs, t)

    def track_ended(self, track: Track, t: float) -> list[dict[str, Any]]:
        self.history.forget(track)
        self.alone.forget(track)
        return self.matcher.track_ended(track, t)

    def summary(self) -> dict[str, Any]:
        cal = self.calibration
        return {"cues": self.fusion.cues, "sizes": self.sizes,
                "calibration": None if cal is None else {
                    "source": "file" if self.fixed is not None else "self", "reprojection_px": round(
                        cal.reprojection_px, 3), "inliers": cal.inliers, "pairs": cal.pairs,
                    "homography": cal.homography.tolist()},
                "self_fits": self.selfcal.fits if self.selfcal else 0,
                "self_drops": self.selfcal.drops if self.selfcal else 0}

    def _scores(self, rgb: list[Track], ir: list[Track]) -> Scores:
        # people there since a camera's first frame, not matched yet: their own entry was never seen
        unaccounted = sum(1 for side in self._present for track in side
                          if not track.entered and self.matcher.partner(track) is None)
        return fused_scores(rgb, ir, self.fusion, self.calibration, self.history, frozenset(self.alone.pairs),
                            self._present, unaccounted)
