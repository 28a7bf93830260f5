"""Ground-plane homography: robust fit, refusal of degenerate input, calibration.json round trip."""

import json

import numpy as np
import pytest

from hicmd.runtime.geometry import Calibration, CalibrationError, fit_calibration, foot_points, reprojection_errors

TRUE_H = np.array([[0.52, 0.03, 12.0], [-0.02, 0.55, 20.0], [1e-5, 4e-5, 1.0]])


def _pairs(n: int, rng: np.random.Generator, noise: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    rgb = rng.uniform([0, 200], [640, 480], size=(n, 2))
    ir = Calibration(TRUE_H, (640, 480), (320, 256), 0.0, n, n).rgb_to_ir(rgb)
    return rgb, ir + rng.normal(0, noise, ir.shape)


def test_fit_recovers_the_homography_despite_noise_and_wrong_pairs():
    rng = np.random.default_rng(0)
    rgb, ir = _pairs(120, rng, noise=1.0)
    wrong = rng.choice(120, 30, replace=False)
    ir[wrong] = rng.uniform([0, 0], [320, 256], size=(30, 2))  # 25 % of pairs are different people
    cal = fit_calibration(rgb, ir, (640, 480), (320, 256))
    grid = np.stack(np.meshgrid(np.linspace(0, 640, 9), np.linspace(220, 480, 5)), -1).reshape(-1, 2)
    truth = Calibration(TRUE_H, (640, 480), (320, 256), 0, 1, 1).rgb_to_ir(grid)
    assert np.median(np.linalg.norm(cal.rgb_to_ir(grid) - truth, axis=1)) < 1.0
    assert 85 <= cal.inliers <= 95 and cal.pairs == 120
    assert cal.reprojection_px < 2.0


@pytest.mark.parametrize("case, message", [
    ("three", "at least 4"),
    ("collinear", "one line"),
    ("unequal", "in pairs"),
])
def test_degenerate_point_pairs_are_refused_with_one_line(case, message):
    rng = np.random.default_rng(1)
    rgb, ir = _pairs(20, rng)
    if case == "three":
        rgb, ir = rgb[:3], ir[:3]
    elif case == "collinear":
        rgb = np.c_[np.linspace(0, 600, 20), np.linspace(250, 450, 20)]
        ir = Calibration(TRUE_H, (640, 480), (320, 256), 0, 1, 1).rgb_to_ir(rgb)
    else:
        ir = ir[:-1]
    with pytest.raises(CalibrationError, match=message):
        fit_calibration(rgb, ir, (640, 480), (320, 256))


def test_calibration_file_round_trip_and_bad_files(tmp_path):
    cal = fit_calibration(*_pairs(40, np.random.default_rng(2)), (640, 480), (320, 256))
    path = tmp_path / "calibration.json"
    cal.save(path)
    back = Calibration.load(path)
    assert np.allclose(back.homography, cal.homography) and back.rgb_size == (640, 480) and back.inliers == cal.inliers
    assert not list(tmp_path.glob(".*.tmp"))

    bad = json.loads(path.read_text())
    for mutate, message in [
        (lambda d: d.update(homography=[[1, 0, 0], [2, 0, 0], [0, 0, 1]]), "singular"),
        (lambda d: d.update(homography=[[1, 0], [0, 1]]), "3x3"),
        (lambda d: d.pop("rgb_size"), "malformed"),
        (lambda d: d.update(format="other"), "not a hicmd calibration"),
    ]:
        data = json.loads(json.dumps(bad))
        mutate(data)
        path.write_text(json.dumps(data))
        with pytest.raises(CalibrationError, match=message):
            Calibration.load(path)
    path.write_bytes(b"\x80\x81 not json")
    with pytest.raises(CalibrationError, match="cannot read"):
        Calibration.load(path)
    with pytest.raises(CalibrationError, match="does not exist"):
        Calibration.load(tmp_path / "missing.json")


def test_a_calibration_for_other_image_sizes_is_refused():
    cal = Calibration(TRUE_H, (640, 480), (320, 256), 0.5, 10, 10)
    cal.check_sizes((640, 480), (320, 256))
    with pytest.raises(CalibrationError, match="recalibrate"):
        cal.check_sizes((1280, 720), (320, 256))


def test_a_fit_whose_scale_comes_out_negative_still_maps_the_ground_it_was_fitted_on():
    """A homography is defined up to scale, also a negative one. OpenCV returns it with h33 = 1, which leaves the
    mapped points' w negative where the horizon line runs between the image origin and the people (two cameras
    looking at the ground from opposite sides, SynthVI's `separate` rig). w <= 0 means "behind the horizon" only
    once the sign is fixed so that the ground the fit was made from has w > 0; without that, every point mapped
    to nan and the geometry cue went blind."""
    h = np.array([[1.0, 0.05, 3.0], [0.02, 1.0, -4.0], [0.0005, -0.01, 1.0]])
    rng = np.random.default_rng(0)
    rgb = np.c_[rng.uniform(10, 250, 60), rng.uniform(110, 190, 60)]  # all beyond y = 100, where w < 0
    homog = np.c_[rgb, np.ones(len(rgb))] @ h.T
    assert (homog[:, 2] < 0).all()
    ir = homog[:, :2] / homog[:, 2:]
    cal = fit_calibration(rgb, ir, (256, 192), (256, 192))
    mapped = cal.rgb_to_ir(rgb)
    assert np.isfinite(mapped).all() and np.allclose(mapped, ir, atol=1e-3)
    assert np.isnan(cal.rgb_to_ir(np.array([[100.0, 10.0]]))).all()  # the far side of the horizon line


def test_foot_points_and_errors():
    assert foot_points(np.array([[10, 20, 30, 100]])).tolist() == [[25.0, 120.0]]
    rgb, ir = _pairs(5, np.random.default_rng(3))
    assert np.allclose(reprojection_errors(TRUE_H, rgb, ir), 0, atol=1e-6)


def test_a_fit_knows_where_it_is_uncertain():
    """Two walkers' paths pin the map down along them and leave it a guess far from them: the fit's uncertainty
    (first-order, from its inliers) must say so, and follow where the map is actually wrong."""
    rng = np.random.default_rng(3)
    t = np.linspace(0, 1, 40)
    rgb = np.r_[np.c_[40 + 200 * t, 300 + 120 * t], np.c_[60 + 160 * t, 440 - 100 * t]]  # the left part only
    truth = Calibration(TRUE_H, (640, 480), (320, 256), 0.0, 1, 1)
    cal = fit_calibration(rgb, truth.rgb_to_ir(rgb) + rng.normal(0, 1.0, (80, 2)), (640, 480), (320, 256))
    on_paths, far = np.array([[140.0, 360.0], [100.0, 410.0]]), np.array([[600.0, 220.0], [620.0, 470.0]])
    near_sigma, far_sigma = cal.uncertainty_px(on_paths), cal.uncertainty_px(far)
    assert near_sigma.max() < 1.0 and far_sigma.min() > 5 * near_sigma.max()
    far_error = np.linalg.norm(cal.rgb_to_ir(far) - truth.rgb_to_ir(far), axis=1)
    near_error = np.linalg.norm(cal.rgb_to_ir(on_paths) - truth.rgb_to_ir(on_paths), axis=1)
    assert far_error.min() > near_error.max()  # and the map is indeed worse there
    assert truth.uncertainty_px(far).tolist() == [0.0, 0.0]  # a given calibration (a file) has no covariance
    assert "covariance" not in truth.to_json()
