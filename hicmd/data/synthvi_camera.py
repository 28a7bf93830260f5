"""Pinhole cameras over a shared ground plane for SynthVI clips, and the two rigs the stream is tested on.

World coordinates are metres: X across the scene, Y away from the cameras, Z up; people stand on Z = 0. A camera
has a position, a yaw (direction of its optical axis on the ground, 0 = +Y), a downward tilt and a focal length in
pixels. Because people stand on one plane, a foot point seen by the RGB camera and by the IR camera are related by
one 3x3 homography, H = G_ir · G_rgb^-1 with G the ground->image homography of each camera: that is the truth a
calibration is checked against (written into clip.json).

Rigs:
- `bispectrum`: the common surveillance product, RGB and thermal sensors 6 cm apart in one housing, the thermal
  sensor with a narrower field of view and a lower resolution; the views nearly coincide.
- `separate`: two cameras mounted apart, watching the same area from different sides and heights; the fields of
  view overlap partly, so some people are seen by one camera only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["PinholeCamera", "RIGS", "make_rig", "rig_homography"]

RIGS = ("bispectrum", "separate")


@dataclass(frozen=True)
class PinholeCamera:
    width: int
    height: int
    hfov_deg: float  # horizontal field of view
    position: tuple[float, float, float]  # metres
    yaw_deg: float  # optical axis direction on the ground: 0 looks along +Y, 90 along +X
    tilt_deg: float  # downward

    @property
    def focal(self) -> float:
        return (self.width / 2) / math.tan(math.radians(self.hfov_deg) / 2)

    @property
    def K(self) -> np.ndarray:  # noqa: N802 - the usual name
        return np.array([[self.focal, 0, self.width / 2], [0, self.focal, self.height / 2], [0, 0, 1.0]])

    @property
    def R(self) -> np.ndarray:  # noqa: N802 - world -> camera rotation (rows: right, down, forward)
        yaw, tilt = math.radians(self.yaw_deg), math.radians(self.tilt_deg)
        right = np.array([math.cos(yaw), -math.sin(yaw), 0.0])
        forward = np.array([math.sin(yaw) * math.cos(tilt), math.cos(yaw) * math.cos(tilt), -math.sin(tilt)])
        down = np.cross(forward, right)
        return np.stack([right, down, forward])

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 3) world points -> (N, 2) pixels and (N,) depths along the optical axis (<= 0: behind)."""
        cam = (np.asarray(points, np.float64).reshape(-1, 3) - np.asarray(self.position)) @ self.R.T
        depth = cam[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            pix = (cam @ self.K.T)[:, :2] / depth[:, None]
        return pix, depth

    def ground_homography(self) -> np.ndarray:
        """Ground (X, Y, 1) -> image pixels (homogeneous): K [r1 r2 t] with t = -R C."""
        r, c = self.R, np.asarray(self.position, np.float64)
        return self.K @ np.column_stack([r[:, 0], r[:, 1], -r @ c])

    def to_json(self) -> dict:
        return {"width": self.width, "height": self.height, "hfov_deg": self.hfov_deg, "focal_px": round(self.focal, 3),
                "position_m": list(self.position), "yaw_deg": self.yaw_deg, "tilt_deg": self.tilt_deg}


def rig_homography(rgb: PinholeCamera, ir: PinholeCamera) -> np.ndarray:
    """The true RGB-image -> IR-image ground-plane homography, normalised so H[2, 2] = 1."""
    h = ir.ground_homography() @ np.linalg.inv(rgb.ground_homography())
    return h / h[2, 2]


def make_rig(name: str, rng: np.random.Generator, size: tuple[int, int] = (192, 256)) -> dict[str, PinholeCamera]:
    """Cameras of a rig with a little per-clip variation (mounting height, tilt, aim). `size` is the RGB
    (height, width); the thermal sensor of a bi-spectrum camera has a lower resolution."""
    if name not in RIGS:
        raise ValueError(f"unknown rig {name!r}; use one of {', '.join(RIGS)}")
    height, width = size
    mount = float(rng.uniform(2.8, 3.4))
    tilt = float(rng.uniform(15.0, 19.0))
    aim = float(rng.uniform(-4.0, 4.0))
    rgb = PinholeCamera(width, height, float(rng.uniform(60.0, 66.0)), (5.0, -1.5, mount), aim, tilt)
    if name == "bispectrum":
        ir_w, ir_h = int(round(width * 0.8 / 4)) * 4, int(round(height * 0.8 / 4)) * 4
        ir = PinholeCamera(ir_w, ir_h, float(rng.uniform(50.0, 56.0)), (5.06, -1.5, mount), aim, tilt)
    else:  # from the right-hand side, higher, looking across the area: partial overlap
        ir = PinholeCamera(width, height, float(rng.uniform(52.0, 58.0)),
                           (float(rng.uniform(13.0, 14.0)), float(rng.uniform(1.5, 3.0)), float(rng.uniform(4.0, 5.0))),
                           float(rng.uniform(-68.0, -58.0)), float(rng.uniform(22.0, 28.0)))
    return {"rgb": rgb, "ir": ir}
