"""Two pinhole cameras looking at one ground from different sides, as on SynthVI's separate rig, and the people
they see: for self-calibration tests (tests/test_presence.py, tests/test_selfcal.py)."""

from types import SimpleNamespace

import numpy as np

from hicmd.runtime.fusion import FOOT_RAISE

SIZE = (640, 480)
STATURE = 1.7


def pinhole(position, target, focal=500.0):
    forward = np.subtract(target, position) / np.linalg.norm(np.subtract(target, position))
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    rotation = np.stack([right, down, forward])  # world -> camera (x right, y down, z ahead)
    k = np.array([[focal, 0, SIZE[0] / 2], [0, focal, SIZE[1] / 2], [0, 0, 1]])
    ground = k @ np.c_[rotation[:, 0], rotation[:, 1], -rotation @ position]  # ground (x, y, 1) -> image
    return SimpleNamespace(k=k, rotation=rotation, position=np.asarray(position, float), ground=ground)


RGB = pinhole((0.0, -8.0, 4.0), (0.0, 3.0, 0.0))
IR = pinhole((9.0, -1.0, 5.0), (0.0, 3.0, 0.0), focal=450.0)
TRUE_H = IR.ground @ np.linalg.inv(RGB.ground)


def seen(view, ground_xy):
    """(foot pixel, box height, wholly in the frame) of a person standing at ground_xy, seen by camera `view`."""
    pts = np.array([[*ground_xy, 0.0], [*ground_xy, STATURE]])
    cam = (pts - view.position) @ view.rotation.T
    pix = cam @ view.k.T
    pix = pix[:, :2] / pix[:, 2:]
    foot, head = pix
    whole = bool(0 < head[1] and foot[1] < SIZE[1] and 0 < foot[0] < SIZE[0])
    return foot, float(foot[1] - head[1]), whole


def track(tid, camera, xy):
    """A stream track of person `tid` standing at ground xy, as the "rgb" or "ir" camera sees them."""
    view = RGB if camera == "rgb" else IR
    foot, height, _ = seen(view, xy)
    bottom = foot[1] + FOOT_RAISE * height  # a box's bottom edge is the front of the feet, below the ground point
    box = np.array([foot[0] - height / 5, bottom - height, foot[0] + height / 5, bottom])
    return SimpleNamespace(id=tid, camera=camera, box=box, visible=True)
