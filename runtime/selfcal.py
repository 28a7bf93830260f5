"""Online self-calibration of the RGB->IR ground-plane homography from the stream's own assignments. Torch-free.

Each association round pairs every visible RGB person with an IR person (the Hungarian assignment on appearance and
time). Many of those pairs are wrong on a model that does not know the people, but the right ones share one thing
the wrong ones lack: their foot points, taken at the same moment, are related by one homography, frame after frame,
wherever the person walks. So candidate foot-point pairs are collected from the assignments (those whose appearance
distance is not hopeless), and once enough are spread over the ground, RANSAC fits the homography: wrong pairs are
outliers (a wrong pair traces two different people's paths, which no one homography relates). The stream announces
the fit in a `calibration` event and starts fusing geometry into its association; it refits as evidence grows, and
drops a fit whose error on new pairs grows (a camera was moved or knocked), going back to appearance + time until a
new fit holds.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

from .geometry import Calibration, CalibrationError, Size, fit_calibration, reprojection_errors

__all__ = ["SelfCalOptions", "SelfCalibrator"]


@dataclass(frozen=True)
class SelfCalOptions:
    candidate: float = 0.95  # assigned pairs farther apart in appearance than this are not even candidates
    min_pairs: int = 24  # pairs before the first fit
    refit_every: int = 16  # new pairs between refits
    every_s: float = 0.2  # one pair per assigned pair at most this often (consecutive frames say little new)
    ransac_px: float = 5.0  # IR pixels
    min_inlier_ratio: float = 0.3  # of the candidates; RANSAC finds the right ones among the wrong
    drift_window: int = 12  # recent pairs judged against the current fit
    drift_px: float = 12.0  # median error of those above which the fit is dropped (at least 3x its own error)
    border_px: float = 2.0  # boxes this close to the frame edge are cut: their bottom is not the foot


class SelfCalibrator:
    def __init__(self, rgb_size: Size, ir_size: Size, opts: SelfCalOptions = SelfCalOptions()) -> None:
        self.sizes, self.opts = {"rgb": rgb_size, "ir": ir_size}, opts
        self.calibration: Calibration | None = None
        self.pairs: deque[tuple[np.ndarray, np.ndarray]] = deque(maxlen=600)
        self.recent: deque[float] = deque(maxlen=opts.drift_window)
        self._last: dict[tuple[int, int], float] = {}
        self._fitted_at = 0
        self._failed_said = False
        self.fits = self.drops = 0

    def observe(self, assigned: Iterable[tuple[Any, Any, float]], t: float) -> list[dict[str, Any]]:
        """Take foot-point pairs from this round's assigned (RGB track, IR track, appearance distance) pairs;
        returns calibration events."""
        from .fusion import foot

        for rgb, ir, distance in assigned:
            key = (rgb.id, ir.id)
            if not (rgb.visible and ir.visible) or distance > self.opts.candidate:
                continue
            if not (self._whole(rgb) and self._whole(ir)) or t - self._last.get(key, -1e9) < self.opts.every_s:
                continue
            self._last[key] = t
            pair = (foot(rgb), foot(ir))
            self.pairs.append(pair)
            if self.calibration is not None:
                self.recent.append(float(reprojection_errors(self.calibration.homography, *pair)[0]))
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

    def _fit(self, t: float) -> list[dict[str, Any]]:
        rgb = np.stack([p[0] for p in self.pairs])
        ir = np.stack([p[1] for p in self.pairs])
        self._fitted_at = len(self.pairs)
        try:
            fit = fit_calibration(rgb, ir, self.sizes["rgb"], self.sizes["ir"], self.opts.ransac_px)
            if fit.inliers < self.opts.min_inlier_ratio * fit.pairs:
                raise CalibrationError(f"only {fit.inliers} of {fit.pairs} pairs agree")
        except CalibrationError as exc:
            if self.calibration is None and not self._failed_said:
                self._failed_said = True  # said once; it keeps trying as pairs come in
                return [{"event": "calibration", "t": round(t, 4), "status": "unfitted", "source": "self",
                         "reason": str(exc), "pairs": len(self.pairs), "cues": "appearance+time"}]
            return []
        status = "fitted" if self.calibration is None else "refitted"
        self.calibration, self.fits = fit, self.fits + 1
        self.recent.clear()
        return [{"event": "calibration", "t": round(t, 4), "status": status, "source": "self",
                 "reprojection_px": round(fit.reprojection_px, 3), "inliers": fit.inliers, "pairs": fit.pairs,
                 "homography": [[round(v, 8) for v in row] for row in fit.homography.tolist()]}]

    def _check_drift(self, t: float) -> list[dict[str, Any]]:
        if self.calibration is None or len(self.recent) < self.recent.maxlen:
            return []
        error = float(np.median(self.recent))
        if error <= max(self.opts.drift_px, 3 * self.calibration.reprojection_px):
            return []
        self.calibration, self.drops = None, self.drops + 1
        self.pairs.clear()  # pairs from before the camera moved describe the old view
        self.recent.clear()
        self._fitted_at, self._failed_said = 0, False
        return [{"event": "calibration", "t": round(t, 4), "status": "dropped", "source": "self",
                 "reason": f"median error {error:.1f} px on the last {self.opts.drift_window} pairs: a camera moved?",
                 "cues": "appearance+time"}]
