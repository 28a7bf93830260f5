"""Ground-plane geometry between the RGB and the IR camera. Torch-free.

People stand on one ground plane, so the foot point of a person (bottom centre of the box) in the RGB image and in
the IR image are related by one fixed 3x3 homography, whatever the two cameras' placements: H_rgb->ir = G_ir G_rgb^-1
for the ground->image homographies G of each camera. A bi-spectrum camera (two sensors a few cm apart) gives an H
close to a similarity; two separately mounted cameras give a general one.

`fit_calibration` estimates H robustly from foot-point pairs (OpenCV RANSAC, then Levenberg-Marquardt on the
inliers); `Calibration` carries it with the image sizes it was made for and the quality figures of the fit, and
reads / writes `calibration.json`. The checks OpenCV does not make are made here: fewer than 4 pairs, points on
(nearly) one line — everyone walking one corridor gives a fit that is exact along the line and arbitrary across
it — and a near-singular matrix. A fit also knows where it is sure: the first-order covariance of its entries from
its inliers gives, at any RGB point, how far off the mapped point may be (`Calibration.uncertainty_px`), small among
the fitted points and growing away from them.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from hicmd.errors import HicmdError

from .atomic import write_atomically

__all__ = ["Calibration", "CalibrationError", "fit_calibration", "foot_points", "reprojection_errors"]

FORMAT = "hicmd-calibration/1"
MIN_PAIRS = 4
# The smaller principal spread of the points over the larger one: below this the points lie on one line.
MIN_SPREAD_RATIO = 0.02


class CalibrationError(HicmdError, ValueError):
    """A calibration that cannot be made or used: too few or collinear pairs, a singular or malformed matrix,
    a file made for other image sizes. The message says what to do."""


Size = tuple[int, int]  # (width, height) in pixels


@dataclass(frozen=True)
class Calibration:
    """The RGB->IR ground-plane homography, the image sizes it maps between and the quality of its fit."""

    # 3x3 float64, maps RGB image pixels to IR image pixels, scaled so that |H[2, 2]| == 1, its sign such that the
    # ground it was fitted on has w > 0 (fit_calibration)
    homography: np.ndarray
    rgb_size: Size
    ir_size: Size
    reprojection_px: float  # median IR-image distance of the inlier pairs after mapping
    inliers: int
    pairs: int
    # 8x8 covariance of the homography's entries (all but H[2, 2]) from the fit's inliers, or None (given by the
    # user, not fitted here): how well the points pin the map down, and so how far it can be trusted from them
    covariance: np.ndarray | None = None

    def __post_init__(self) -> None:
        h = np.asarray(self.homography, np.float64)
        if h.shape != (3, 3) or not np.isfinite(h).all():
            raise CalibrationError("the homography must be a 3x3 matrix of finite numbers")
        if abs(h[2, 2]) < 1e-12 or abs(np.linalg.det(h / h[2, 2])) < 1e-9:
            raise CalibrationError("the homography is singular: refit it from point pairs that span the ground")
        for name, size in (("rgb_size", self.rgb_size), ("ir_size", self.ir_size)):
            if len(size) != 2 or min(size) <= 0:
                raise CalibrationError(f"{name} must be [width, height] in pixels, got {list(size)}")
        object.__setattr__(self, "homography", h / abs(h[2, 2]))
        object.__setattr__(self, "rgb_size", (int(self.rgb_size[0]), int(self.rgb_size[1])))
        object.__setattr__(self, "ir_size", (int(self.ir_size[0]), int(self.ir_size[1])))

    def rgb_to_ir(self, points: np.ndarray) -> np.ndarray:
        """Map (N, 2) RGB pixel points to IR pixels; points that fall behind the horizon come back as nan."""
        pts = np.asarray(points, np.float64).reshape(-1, 2)
        homog = np.c_[pts, np.ones(len(pts))] @ self.homography.T
        w = homog[:, 2:3]
        with np.errstate(divide="ignore", invalid="ignore"):
            out = homog[:, :2] / w
        out[(w[:, 0] <= 1e-12)] = np.nan
        return out

    def uncertainty_px(self, points: np.ndarray) -> np.ndarray:
        """(N,) the standard deviation, in IR pixels along the worst direction, of where (N, 2) RGB points map:
        small among the points the map was fitted on, growing away from them (a homography fitted on two walkers'
        paths is exact there and a guess across the rest of the ground). Zero without a covariance."""
        pts = np.asarray(points, np.float64).reshape(-1, 2)
        if self.covariance is None:
            return np.zeros(len(pts))
        jac = _map_jacobian(self.homography, pts)
        cov = np.einsum("nij,jk,nlk->nil", jac, self.covariance, jac)
        return np.sqrt(np.maximum(np.linalg.eigvalsh(cov)[:, -1], 0.0))

    def check_sizes(self, rgb_size: Size, ir_size: Size) -> None:
        """Refuse to use a calibration made for other image sizes (a homography is in pixels)."""
        if tuple(rgb_size) != self.rgb_size or tuple(ir_size) != self.ir_size:
            raise CalibrationError(
                f"the calibration was made for RGB {self.rgb_size[0]}x{self.rgb_size[1]} and IR "
                f"{self.ir_size[0]}x{self.ir_size[1]} images, but the cameras give RGB {rgb_size[0]}x{rgb_size[1]} "
                f"and IR {ir_size[0]}x{ir_size[1]}: recalibrate with `hicmd calibrate` for these cameras")

    def to_json(self) -> dict:
        return {"format": FORMAT, "homography": self.homography.tolist(), "rgb_size": list(self.rgb_size),
                "ir_size": list(self.ir_size), "reprojection_px": round(float(self.reprojection_px), 4),
                "inliers": int(self.inliers), "pairs": int(self.pairs)}

    def save(self, path: Path) -> None:
        """Write calibration.json atomically (a crash leaves the previous file or the complete new one)."""
        write_atomically(path, json.dumps(self.to_json(), indent=2) + "\n")

    @classmethod
    def from_json(cls, data: object, source: str = "calibration") -> "Calibration":
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise CalibrationError(f"{source} is not a hicmd calibration (expected \"format\": \"{FORMAT}\")")
        try:
            return cls(np.array(data["homography"], np.float64), tuple(data["rgb_size"]), tuple(data["ir_size"]),
                       float(data.get("reprojection_px", math.nan)), int(data.get("inliers", 0)),
                       int(data.get("pairs", 0)))
        except CalibrationError as exc:
            raise CalibrationError(f"{source}: {exc}") from None
        except (KeyError, TypeError, ValueError) as exc:
            raise CalibrationError(f"{source} is malformed ({exc.__class__.__name__}: {exc}); "
                                   "rewrite it with `hicmd calibrate`") from None

    @classmethod
    def load(cls, path: Path) -> "Calibration":
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CalibrationError(f"calibration file {path} does not exist") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CalibrationError(f"cannot read calibration file {path}: {exc}") from None
        return cls.from_json(data, str(path))


def foot_points(boxes: np.ndarray) -> np.ndarray:
    """Bottom centre of (N, 4) x, y, w, h boxes: where the person touches the ground."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    return np.c_[b[:, 0] + b[:, 2] / 2, b[:, 1] + b[:, 3]]


def reprojection_errors(homography: np.ndarray, rgb: np.ndarray, ir: np.ndarray) -> np.ndarray:
    """IR-image distance between each mapped RGB point and its IR partner."""
    mapped = cv2.perspectiveTransform(np.asarray(rgb, np.float64).reshape(-1, 1, 2), homography).reshape(-1, 2)
    return np.linalg.norm(mapped - np.asarray(ir, np.float64).reshape(-1, 2), axis=1)


def _map_jacobian(h: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """(N, 2, 8): how each mapped point moves with H's entries h00 h01 h02 h10 h11 h12 h20 h21 (h22 held)."""
    x, y, one = pts[:, 0], pts[:, 1], np.ones(len(pts))
    w = h[2, 0] * x + h[2, 1] * y + h[2, 2]
    u, v = (h[0, 0] * x + h[0, 1] * y + h[0, 2]) / w, (h[1, 0] * x + h[1, 1] * y + h[1, 2]) / w
    jac = np.zeros((len(pts), 2, 8))
    jac[:, 0, 0:3] = jac[:, 1, 3:6] = np.c_[x, y, one] / w[:, None]
    jac[:, 0, 6:8] = -(u / w)[:, None] * np.c_[x, y]
    jac[:, 1, 6:8] = -(v / w)[:, None] * np.c_[x, y]
    return jac


def _covariance(h: np.ndarray, rgb: np.ndarray, residual_px: np.ndarray, floor_px: float = 1.0) -> np.ndarray:
    """First-order covariance of H's entries from its inliers' RGB points and reprojection errors (Hartley &
    Zisserman, 5.2): the residuals' per-axis variance (at least floor_px, a detector's jitter) times the inverse of
    the normal matrix."""
    jac = _map_jacobian(h, rgb).reshape(-1, 8)
    variance = max(float(np.mean(residual_px**2)) / 2, floor_px**2)
    return variance * np.linalg.pinv(jac.T @ jac)


def _spread_ratio(points: np.ndarray) -> float:
    """sqrt of the smaller over the larger eigenvalue of the points' covariance: 0 for points on one line."""
    if len(points) < 3:
        return 0.0
    eig = np.linalg.eigvalsh(np.cov(points.T))
    return float(math.sqrt(max(eig[0], 0.0) / eig[1])) if eig[1] > 0 else 0.0


def fit_calibration(rgb: np.ndarray, ir: np.ndarray, rgb_size: Size, ir_size: Size,
                    ransac_px: float = 4.0) -> Calibration:
    """Fit the RGB->IR ground homography to foot-point pairs ((N, 2) each), robust to wrong pairs."""
    rgb = np.asarray(rgb, np.float64).reshape(-1, 2)
    ir = np.asarray(ir, np.float64).reshape(-1, 2)
    if len(rgb) != len(ir):
        raise CalibrationError(f"{len(rgb)} RGB points but {len(ir)} IR points: give them in pairs")
    if len(rgb) < MIN_PAIRS:
        raise CalibrationError(f"{len(rgb)} point pairs: a homography needs at least {MIN_PAIRS} "
                               "(give pairs spread over the ground, not on one line)")
    if not (np.isfinite(rgb).all() and np.isfinite(ir).all()):
        raise CalibrationError("point pairs contain non-finite coordinates")
    for name, pts in (("RGB", rgb), ("IR", ir)):
        if _spread_ratio(pts) < MIN_SPREAD_RATIO:
            raise CalibrationError(f"the {name} points lie (nearly) on one line: the homography is undetermined "
                                   "across it; add pairs spread over the ground")
    method = 0 if len(rgb) == MIN_PAIRS else cv2.RANSAC
    h, mask = cv2.findHomography(rgb, ir, method, ransac_px, maxIters=5000, confidence=0.999)
    if h is None:
        raise CalibrationError("no homography fits these point pairs; check that each pair is one ground point")
    inlier = mask.ravel().astype(bool)
    if inlier.sum() < MIN_PAIRS or _spread_ratio(rgb[inlier]) < MIN_SPREAD_RATIO:
        raise CalibrationError(f"only {int(inlier.sum())} of {len(rgb)} pairs agree on one homography, or they lie "
                               "on one line; give more, well-spread pairs")
    # a homography is defined up to scale, a negative one too: OpenCV's (h33 = 1) can leave the ground it was fitted
    # on at w < 0 (where the horizon line runs between the image origin and the people). Orient it so that this
    # ground has w > 0, which is what makes w <= 0 mean "behind the horizon" in rgb_to_ir
    if np.median(np.c_[rgb[inlier], np.ones(int(inlier.sum()))] @ h[2]) < 0:
        h = -h
    err = reprojection_errors(h, rgb[inlier], ir[inlier])
    return Calibration(h, rgb_size, ir_size, float(np.median(err)), int(inlier.sum()), len(rgb),
                       _covariance(h / abs(h[2, 2]), rgb[inlier], err))
