"""What both cameras saw refutes a wrong ground-plane homography (runtime/presence.py), and self-calibration
listens to it (runtime/selfcal.py). Two pinhole cameras look at one ground from different sides, as on SynthVI's
separate rig."""

import numpy as np
from testkit.twocams import IR, RGB, SIZE, TRUE_H, seen, track

from hicmd.runtime.geometry import Calibration
from hicmd.runtime.presence import Presence
from hicmd.runtime.selfcal import SelfCalibrator, SelfCalOptions


def _walk(presence: Presence, people: dict, seconds=3.0, only_rgb=(), ir_height_scale=None):
    """people: id -> (start xy, velocity xy); ids in only_rgb are not seen by the IR camera (too far for it)."""
    for k in range(int(seconds * 10)):
        t = k * 0.1
        rows = {"rgb": [], "ir": []}
        for pid, (start, velocity) in people.items():
            xy = np.add(start, np.multiply(velocity, t))
            for cam, camera in (("rgb", RGB), ("ir", IR)):
                if cam == "ir" and pid in only_rgb:
                    continue
                foot, height, whole = seen(camera, xy)
                if cam == "ir" and ir_height_scale and pid in ir_height_scale:
                    height *= ir_height_scale[pid]
                rows[cam].append((pid, foot, height, whole))
        presence.add(rows, t)


WALKERS = {1: ((-3.0, 0.0), (1.5, 0.6)), 2: ((3.0, 5.0), (-1.2, -0.8)), 3: ((-2.0, 6.0), (1.0, -1.0))}


def test_the_true_homography_stands_a_shifted_one_is_refuted_and_a_far_person_refutes_nothing():
    presence = Presence()
    far = {9: ((-10.0, 14.0), (0.1, 0.0))}  # in the IR image, far away, where its detector has found no one
    _walk(presence, WALKERS | far, only_rgb={9})
    mapped = Calibration(TRUE_H, SIZE, SIZE, 0, 4, 4).rgb_to_ir(seen(RGB, (-10.0, 14.0))[0][None])[0]
    assert 0 < mapped[0] < SIZE[0] and 0 < mapped[1] < SIZE[1]  # the far person is in the IR image ...
    pairs = [(1, 1), (2, 2), (3, 3)]
    assert presence.refutes(TRUE_H, pairs) is None  # ... but outside where it has seen people whole: no refutation
    shifted = np.array([[1.0, 0, 45.0], [0, 1.0, 0], [0, 0, 1.0]]) @ TRUE_H  # people land 45 px beside themselves
    why = presence.refutes(shifted)
    assert why is not None and "watches" in why and "saw someone there in only" in why
    assert presence.refutes(np.linalg.inv(np.linalg.inv(TRUE_H))) is None  # the check is about the map, not its form


def test_a_person_placed_where_the_fit_is_a_guess_refutes_nothing():
    presence = Presence()
    _walk(presence, WALKERS)
    shifted = np.array([[1.0, 0, 45.0], [0, 1.0, 0], [0, 0, 1.0]]) @ TRUE_H  # 45 px off: refuted where it is sure
    assert presence.refutes(shifted, uncertainty=lambda rgb: np.zeros(len(rgb))) is not None
    assert presence.refutes(shifted, uncertainty=lambda rgb: np.full(len(rgb), 30.0)) is None  # a guess everywhere
    # sure only where walker 1 walks in the RGB image: walker 1 alone, placed 45 px off, still refutes it
    path = np.array([seen(RGB, np.add(WALKERS[1][0], np.multiply(WALKERS[1][1], t)))[0] for t in np.arange(0, 3, 0.1)])
    near_path = lambda rgb: np.where(np.linalg.norm(rgb[:, None] - path, axis=2).min(axis=1) < 2.0, 0.0, 30.0)
    why = presence.refutes(shifted, uncertainty=near_path)
    assert why is not None and "track 1 " in why, why


def test_people_paired_with_someone_of_another_height_refute_the_homography():
    presence = Presence()
    _walk(presence, WALKERS)
    pairs = [(1, 1), (2, 2), (3, 3)]
    spread = presence.height_spread(TRUE_H, pairs)
    assert spread is not None and spread < 0.05, spread  # RGB height / IR height / w: one constant for everyone
    wrong = Presence()
    _walk(wrong, WALKERS, ir_height_scale={2: 1.6})  # IR person 2 is not RGB person 2: taller there than depth says
    spread = wrong.height_spread(TRUE_H, pairs)
    assert spread is not None and spread > 0.2, spread
    why = wrong.refutes(TRUE_H, pairs)
    assert why is not None and "heights" in why
    assert Presence().height_spread(TRUE_H, pairs) is None  # no evidence, no verdict


def _watch(cal: SelfCalibrator, seconds: float = 4.0) -> list[dict]:
    """Walk WALKERS past both cameras; candidate pairs only from 1.5 s on (no refit before then)."""
    events = []
    for k in range(int(seconds * 10)):
        t = k * 0.1
        rgb, ir = [], []
        for pid, (start, velocity) in WALKERS.items():
            xy = np.add(start, np.multiply(velocity, t))
            rgb.append(track(pid, "rgb", xy))
            ir.append(track(pid, "ir", xy))
        cal.see(rgb, ir, t)  # who was where, every step
        events += cal.observe([(r, i, 0.8) for r in rgb for i in ir] if t >= 1.5 else [], t)
    return events


def test_a_fit_in_use_that_the_cameras_refute_is_dropped_and_the_right_one_found():
    cal = SelfCalibrator(SIZE, SIZE, SelfCalOptions(min_pairs=20, every_s=0.0, refit_every=8))
    shifted = np.array([[1.0, 0, 45.0], [0, 1.0, 0], [0, 0, 1.0]]) @ TRUE_H
    cal.calibration = Calibration(shifted / shifted[2, 2], SIZE, SIZE, 1.0, 20, 20)  # a wrong fit, in use
    events = _watch(cal)
    statuses = [e["status"] for e in events]
    assert statuses[0] == "dropped" and "refuted" in events[0]["reason"], events[:2]
    assert "fitted" in statuses[1:]
    walked = np.array([seen(RGB, np.add(s, np.multiply(v, t)))[0] for s, v in WALKERS.values() for t in (1.5, 2.5)])
    truth = Calibration(TRUE_H / TRUE_H[2, 2], SIZE, SIZE, 0, 4, 4)
    err = np.linalg.norm(cal.calibration.rgb_to_ir(walked) - truth.rgb_to_ir(walked), axis=1)
    assert np.median(err) < 5.0, err  # where people walked (the wrong fit was 45 px off everywhere)


def test_a_fit_in_use_is_not_dropped_for_what_it_only_guesses():
    cal = SelfCalibrator(SIZE, SIZE, SelfCalOptions(min_pairs=20, every_s=0.0, refit_every=8))
    shifted = np.array([[1.0, 0, 45.0], [0, 1.0, 0], [0, 0, 1.0]]) @ TRUE_H
    unsure = np.eye(8)  # its entries known to +-1: uncertain by far more than 10 px wherever anyone walks
    cal.calibration = Calibration(shifted / shifted[2, 2], SIZE, SIZE, 1.0, 20, 20, unsure)
    assert cal.calibration.uncertainty_px(np.array([[100.0, 100.0]]))[0] > 100
    events = _watch(cal)
    assert events and not [e for e in events if e["status"] == "dropped"], events  # the sure one above was dropped


def test_inside_the_watched_area_agrees_with_opencv():
    import cv2

    from hicmd.runtime.presence import _inside

    rng = np.random.default_rng(7)
    for _ in range(20):
        hull = cv2.convexHull(rng.uniform(0, 300, (30, 2)).astype(np.float32))
        points = rng.uniform(-50, 350, (400, 2))
        points[:3] = hull.reshape(-1, 2)[:3]  # corners count as inside, as for OpenCV
        expected = [cv2.pointPolygonTest(hull, (float(x), float(y)), False) >= 0 for x, y in points]
        assert _inside(hull, points).tolist() == expected
    line = cv2.convexHull(np.array([[0, 0], [10, 10], [20, 20]], np.float32))  # feet on a line: a segment
    assert _inside(line, np.array([[5.0, 5.0], [30.0, 30.0], [5.0, 6.0]])).tolist() == [True, False, False]
