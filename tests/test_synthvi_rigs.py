"""SynthVI camera rigs: pinhole cameras over one ground plane, the true RGB->IR homography in clip.json."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hicmd.data.synthvi_camera import PinholeCamera, make_rig, rig_homography
from hicmd.data.synthvi_video import ONE_CAMERA_MIN_S, _layers, _walkers, write_clip, write_videos
from hicmd.runtime.geometry import Calibration, foot_points


def _rows(path) -> dict[tuple[int, int], np.ndarray]:
    data = np.loadtxt(path, delimiter=",", ndmin=2)
    return {(int(r[0]), int(r[1])): r[2:6] for r in data}


def test_the_rig_homography_maps_ground_points_between_the_cameras():
    for name in ("bispectrum", "separate"):
        cams = make_rig(name, np.random.default_rng(3))
        h = rig_homography(cams["rgb"], cams["ir"])
        ground = np.c_[np.random.default_rng(4).uniform([0, 3], [10, 9], (50, 2)), np.zeros(50)]
        rgb, _ = cams["rgb"].project(ground)
        ir, _ = cams["ir"].project(ground)
        mapped = Calibration(h, (1, 1), (1, 1), 0, 1, 1).rgb_to_ir(rgb)
        assert np.abs(mapped - ir).max() < 1e-6
        # off the ground (a head) the homography does not hold for separate cameras: the plane matters
        heads = ground + [0, 0, 1.7]
        off = np.abs(Calibration(h, (1, 1), (1, 1), 0, 1, 1).rgb_to_ir(cams["rgb"].project(heads)[0])
                     - cams["ir"].project(heads)[0]).max()
        assert off > (0.5 if name == "bispectrum" else 20)


def test_a_camera_looks_where_it_is_aimed():
    cam = PinholeCamera(200, 100, 90.0, (0.0, 0.0, 2.0), 0.0, 45.0)
    (pixel,), (depth,) = cam.project(np.array([[0.0, 2.0, 0.0]]))  # 45 deg down, straight ahead: image centre
    assert np.allclose(pixel, [100, 50]) and depth == pytest.approx(2 * np.sqrt(2))
    assert cam.focal == pytest.approx(100.0)


def test_people_are_drawn_far_to_near_with_perspective():
    cams = make_rig("bispectrum", np.random.default_rng(0))
    walkers = _walkers(list(range(8)), 5, np.random.default_rng(1), 10.0)
    for t in np.linspace(0, 6, 13):
        boxes = [box for *_, box in _layers(walkers, float(t), cams["rgb"])]
        bottoms = [b[1] + b[3] for b in boxes]
        assert bottoms == sorted(bottoms)  # far (higher in the image) first, so the nearer person occludes


@pytest.mark.parametrize("rig", ["bispectrum", "separate"])
def test_clip_ground_truth_agrees_with_its_homography(tmp_path, rig):
    meta = write_clip(tmp_path / rig, [11, 12, 13, 14], seed=9, index=1, frames=50, rig=rig)
    saved = json.loads((tmp_path / rig / "clip.json").read_text())
    assert saved["rig"] == rig and np.allclose(saved["homography_rgb_to_ir"], meta["homography_rgb_to_ir"])
    cal = Calibration(np.array(saved["homography_rgb_to_ir"]), tuple(saved["sizes"]["rgb"]),
                      tuple(saved["sizes"]["ir"]), 0, 1, 1)
    rgb, ir = _rows(tmp_path / rig / "gt_rgb.txt"), _rows(tmp_path / rig / "gt_ir.txt")
    both = sorted(set(rgb) & set(ir))
    assert len(both) > 20
    sizes = saved["sizes"]

    def whole(box, size) -> bool:  # not cut by the frame: then the box bottom is the foot point
        return 2 < box[0] < size[0] - box[2] - 2 and box[1] + box[3] < size[1] - 2

    errors = []
    for key in both:
        r, i = rgb[key], ir[key]
        if whole(r, sizes["rgb"]) and whole(i, sizes["ir"]):
            mapped = cal.rgb_to_ir(foot_points(r[None]))[0]
            errors.append(np.linalg.norm(mapped - foot_points(i[None])[0]) / i[3])
    assert len(errors) > 10 and np.median(errors) < 0.15, np.median(errors)  # box height units
    only_one = set(rgb) ^ set(ir)
    if rig == "separate":  # partial overlap: people seen by one camera only
        assert len({pid for _, pid in only_one}) >= 1 and len(only_one) > 10


def test_separate_rig_clips_have_a_person_only_one_camera_sees(tmp_path):
    """The deployment's everyday case the separate rig must contain: someone walking where only one camera looks,
    who must never be matched. Even clips: seen by the RGB camera alone; odd ones by the IR camera."""
    for index, camera in ((0, "rgb"), (1, "ir")):
        meta = write_clip(tmp_path / camera, [11, 12, 13], seed=9, index=index, frames=80, rig="separate",
                          one_camera_pid=21)
        assert meta["one_camera_only"] == {"pid": 21, "camera": camera} and 21 in meta["identities"]
        other = "ir" if camera == "rgb" else "rgb"
        seen = [f for f, pid in _rows(tmp_path / camera / f"gt_{camera}.txt") if pid == 21]
        assert len(seen) >= ONE_CAMERA_MIN_S * meta["fps"][camera] * 0.8  # boxes: a frame or two may clip
        assert not [f for f, pid in _rows(tmp_path / camera / f"gt_{other}.txt") if pid == 21]
        assert {pid for _, pid in _rows(tmp_path / camera / f"gt_{other}.txt")} <= {11, 12, 13}
    clips = write_videos(tmp_path / "videos", [2, 5, 8, 11, 14, 17], seed=3, clips=1, frames=60, rig="separate")
    meta = json.loads((clips[0] / "clip.json").read_text())
    walking = set(meta["identities"]) - {meta["one_camera_only"]["pid"]}
    assert meta["one_camera_only"]["pid"] not in walking and 3 <= len(walking) <= 4
