"""Self-calibration's choice of fit (runtime/selfcal.py): the explanations it tries, the people it trusts to found a
first fit, and how spread out their foot points must be. Synthetic two-camera scenes (testkit/twocams.py) and one
SynthVI separate-rig clip, from their boxes; no model: the calibrator is fed every pair of people seen at once."""

from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace

import numpy as np
import pytest
from testkit.twocams import RGB, SIZE, TRUE_H, seen, track

from hicmd.runtime.detect import read_mot
from hicmd.runtime.geometry import Calibration, CalibrationError
from hicmd.runtime.scorecard import calibration_errors
from hicmd.runtime.selfcal import NotYet, SelfCalibrator, SelfCalOptions


def _feed(cal: SelfCalibrator, steps) -> list[dict]:
    events = []
    for t, rgb, ir in steps:
        cal.see(rgb, ir, t)
        events += cal.observe([(r, i, 0.8) for r in rgb for i in ir], t)
    return events


def _child(person, scale=0.6):
    """The same foot point under a shorter person's box."""
    x1, y1, x2, y2 = person.box
    person.box = np.array([x1, y2 - (y2 - y1) * scale, x2, y2])
    return person


def _mirror_scene():
    """Person 1 walks a line seen by both cameras; person 2 walks beside it, seen by the IR camera throughout but by
    the RGB camera for one second only (hidden the rest); a child, 9, walks the mirror image of 2's path on the other
    side of 1, seen by the RGB camera only. Pairing RGB 9 with IR 2 explains far more foot points than the truth
    does, with a map that mirrors the ground (and children are not adults): the best-supported explanation is
    wrong, the right one comes after it."""
    for k in range(40):
        t = k * 0.1
        y = -1.0 + 1.5 * t
        rgb = [track(1, "rgb", (0.0, y)), _child(track(9, "rgb", (-1.5, y + 0.6)))]
        ir = [track(1, "ir", (0.0, y)), track(2, "ir", (1.5, y + 0.6))]
        if 1.0 <= t < 2.0:
            rgb.append(track(2, "rgb", (1.5, y + 0.6)))
        yield t, rgb, ir


def test_when_the_best_supported_explanation_is_refused_the_next_one_is_tried():
    opts = SelfCalOptions(every_s=0.0, min_pairs=20)
    cal = SelfCalibrator(SIZE, SIZE, opts)
    events = _feed(cal, _mirror_scene())
    assert events and events[0]["status"] == "fitted" and events[0]["tracks"] == [[1, 1], [2, 2]], events[:1]
    walked = np.array([seen(RGB, (x, y))[0] for x in (-1.0, 0.0, 1.5) for y in (0.0, 2.5, 5.0)])
    truth = Calibration(TRUE_H / TRUE_H[2, 2], SIZE, SIZE, 0, 4, 4)
    assert np.median(np.linalg.norm(cal.calibration.rgb_to_ir(walked) - truth.rgb_to_ir(walked), axis=1)) < 2.0

    only_best = SelfCalibrator(SIZE, SIZE, dataclasses.replace(opts, tries=1))  # the best or nothing
    events = _feed(only_best, _mirror_scene())
    assert only_best.calibration is None and [e["status"] for e in events] == ["unfitted"], events


class _BestRefused(SelfCalibrator):
    """Refuses the best-supported explanation of every try with `why`, whatever it is; checks the others as usual."""

    def __init__(self, why: type[CalibrationError]) -> None:
        super().__init__(SIZE, SIZE, SelfCalOptions(every_s=0.0, min_pairs=20))
        self.why, self._best = why, False

    def _first_that_holds(self, pairs, t):
        self._best = True
        return super()._first_that_holds(pairs, t)

    def _check(self, fit, found, t) -> None:
        if self._best:
            self._best = False
            raise self.why("refused")
        super()._check(fit, found, t)


def test_a_runner_up_is_tried_past_an_impossible_explanation_not_past_one_not_pinned_down_yet():
    impossible = _BestRefused(CalibrationError)  # a mirror, people behind the camera, refuted: the next may be right
    _feed(impossible, _mirror_scene())
    assert impossible.calibration is not None
    not_yet = _BestRefused(NotYet)  # too few points, one walker, one line: most likely right, the runner-up its rival
    events = _feed(not_yet, _mirror_scene())
    assert not_yet.calibration is None and [e["status"] for e in events] == ["unfitted"], events


def _two_walkers():
    """Two people crossing both views in different directions for 6 s: their paths pin the map down, one way."""
    for k in range(60):
        t = k * 0.1
        yield t, [track(1, "rgb", (-1.0 + 1.2 * t, 1.0)), track(2, "rgb", (1.5, 0.5 + 0.9 * t))], \
            [track(1, "ir", (-1.0 + 1.2 * t, 1.0)), track(2, "ir", (1.5, 0.5 + 0.9 * t))]


def _fitted_at(opts: SelfCalOptions, right: float, swapped: float) -> tuple[float, list]:
    """When (and from which track pairs) the first fit came, with these appearance distances for the two right
    pairs and the two swapped ones."""
    cal = SelfCalibrator(SIZE, SIZE, opts)
    for t, rgb, ir in _two_walkers():
        cal.see(rgb, ir, t)
        for event in cal.observe([(r, i, right if r.id == i.id else swapped) for r in rgb for i in ir], t):
            if event["status"] == "fitted":
                return t, event["tracks"]
    raise AssertionError("never fitted")


def test_a_two_person_fit_that_appearance_contradicts_waits_a_while():
    opts = SelfCalOptions(every_s=0.0, min_pairs=20)
    agreed, tracks = _fitted_at(opts, right=0.6, swapped=0.9)
    assert tracks == [[1, 1], [2, 2]] and agreed < 3.0
    assert _fitted_at(dataclasses.replace(opts, swap_hold_s=0.0), right=0.9, swapped=0.6)[0] == agreed  # off
    contradicted, tracks = _fitted_at(opts, right=0.9, swapped=0.6)  # the right fit, held while nothing refutes it
    assert tracks == [[1, 1], [2, 2]] and contradicted == pytest.approx(agreed + opts.swap_hold_s, abs=0.15)
    # swapped pairs not embedded yet (None) are no evidence against the fit: it does not wait
    assert _fitted_at(opts, right=0.9, swapped=None) == (agreed, [[1, 1], [2, 2]])


def _brief_strangers_scene(seconds: float):
    """Person 1 walks alone through both views; for `seconds`, someone the RGB camera sees and someone else the IR
    camera sees stand where one wrong map (it keeps person 1's line and stretches the ground away from it) takes them
    for one person."""
    start, velocity = np.array([-1.0, 0.0]), np.array([1.5, 0.5])
    normal = np.array([-velocity[1], velocity[0]]) / np.linalg.norm(velocity)
    for k in range(40):
        t = k * 0.1
        rgb, ir = [track(1, "rgb", start + velocity * t)], [track(1, "ir", start + velocity * t)]
        if 2.0 <= t < 2.0 + seconds - 1e-9:
            there = np.array([1.0, 3.0]) + np.array([0.8, 0.3]) * t
            rgb.append(track(9, "rgb", there))
            ir.append(track(8, "ir", there + 0.8 * normal * ((there - start) @ normal)))
        yield t, rgb, ir


def test_people_seen_together_for_a_moment_do_not_found_the_first_fit():
    opts = SelfCalOptions(every_s=0.0, min_pairs=20)  # every step is a foot-point pair: 0.4 s = 4 pairs
    assert opts.first_fit_points > 4
    cal = SelfCalibrator(SIZE, SIZE, opts)
    events = _feed(cal, _brief_strangers_scene(0.4))
    assert cal.calibration is None and all(e["status"] == "unfitted" for e in events), events
    trusting = SelfCalibrator(SIZE, SIZE, dataclasses.replace(opts, first_fit_points=4))
    events = _feed(trusting, _brief_strangers_scene(0.4))
    assert events and events[0]["status"] == "fitted" and events[0]["tracks"] == [[1, 1], [9, 8]], events


# A SynthVI separate-rig clip (`hicmd synth --seed 9099 --rig separate`'s third clip, rendered at one frame rate for
# both cameras): its people mostly walk one way across the place, and the right pairing's foot points spread across
# their path by less than 0.05 of their length: at 0.05 it never calibrates in 30 s ("they lie along one line")
CLIP = {"pids": [12, 13, 36, 56], "seed": 9099, "index": 2, "frames": 300, "rig": "separate", "one_camera_pid": 11}


@pytest.fixture(scope="module")
def separate_clip(tmp_path_factory):
    from hicmd.data.synthvi_video import write_clip

    folder = tmp_path_factory.mktemp("separate") / "clip03"
    write_clip(folder, **CLIP)
    return folder


def _calibrated_after(clip, opts: SelfCalOptions) -> float | None:
    """When the self-calibration, fed the clip's ground-truth boxes, first got within 5 px of the true homography."""
    meta = json.loads((clip / "clip.json").read_text())
    boxes = {cam: read_mot(clip / f"gt_{cam}.txt") for cam in ("rgb", "ir")}
    cal = SelfCalibrator(tuple(meta["sizes"]["rgb"]), tuple(meta["sizes"]["ir"]), opts)
    assert meta["fps"]["rgb"] == meta["fps"]["ir"]  # one IR frame per RGB frame
    steps = []
    for frame in range(1, meta["frames"]["rgb"] + 1):
        people = {cam: [SimpleNamespace(id=int(row[5]), camera=cam, box=row[:4], visible=True)
                        for row in boxes[cam].get(frame, [])] for cam in boxes}
        steps.append(((frame - 1) / meta["fps"]["rgb"], people["rgb"], people["ir"]))
    errors = calibration_errors(_feed(cal, steps), meta, boxes["rgb"])
    return next((t for t, error in errors if error <= 5.0), None)


def test_people_who_all_walk_one_way_still_calibrate_the_separate_rig(separate_clip):
    after = _calibrated_after(separate_clip, SelfCalOptions())
    assert after is not None and after <= 20.0, after
    assert _calibrated_after(separate_clip, SelfCalOptions(min_spread_ratio=0.05)) is None  # what it was
