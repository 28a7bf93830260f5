"""Unit tests of the stream pipeline's parts: sources, Y16, tracker, association, EMA, events, gallery, pairing."""

from __future__ import annotations

import io
import json
import stat

import cv2
import numpy as np
import pytest

from hicmd.runtime.associate import CrossMatcher
from hicmd.runtime.matchscore import score_matches
from hicmd.runtime.capture import Frame, FrameBuffer, prepare_frame
from hicmd.runtime.detect import DetectorError, FileDetections, OnnxDetector, parse_yolo, read_mot
from hicmd.runtime.events import SCHEMA, EventLog, validate_event
from hicmd.runtime.gallery import Gallery, GalleryError, save_crop
from hicmd.runtime.pairing import Pairer
from hicmd.runtime.sources import SourceError, fix_y16_shape, parse_ir_range, parse_source, y16_to_u8
from hicmd.runtime.track import Appearance, IouTracker, Track, crowded, ema_update, iou_matrix, whole_in_frame

# ------------------------------------------------------------------------------------------------ sources


@pytest.mark.parametrize("text, kind, target", [
    ("cam0", "device", 0), ("2", "device", 2), ("v4l2:///dev/video3", "v4l2", "/dev/video3"),
    ("csi://1", "csi", 1), ("rtsp://10.0.0.2:554/live", "network", "rtsp://10.0.0.2:554/live"),
    ("udp://127.0.0.1:5000", "network", "udp://127.0.0.1:5000"), ("http://cam.local/mjpg", "network", None),
    ("gst:videotestsrc ! appsink", "gst", "videotestsrc ! appsink"),
])
def test_parse_source_forms(text, kind, target):
    spec = parse_source(text)
    assert spec.kind == kind
    assert spec.live
    if target is not None:
        assert spec.target == target


def test_parse_source_files_and_errors(tmp_path):
    clip = tmp_path / "a.mp4"
    clip.write_bytes(b"x")
    assert parse_source(str(clip)).kind == "file" and not parse_source(str(clip)).live
    assert parse_source(f"file://{clip}").kind == "file"
    assert parse_source(str(tmp_path)).kind == "folder"
    with pytest.raises(SourceError, match="no such file"):
        parse_source(str(tmp_path / "missing.mp4"))
    with pytest.raises(SourceError, match="scheme ftp"):
        parse_source("ftp://host/x")


def test_ir_range_and_y16_fixed_window():
    assert parse_ir_range("20:40") == (20.0, 40.0)
    for bad in ("40:20", "abc", "20"):
        with pytest.raises(SourceError):
            parse_ir_range(bad)
    ck = lambda c: int(round((c + 273.15) * 100))  # noqa: E731  degrees C -> centi-Kelvin
    frame = np.array([[ck(10), ck(20), ck(30), ck(40), ck(50)]], np.uint16)
    out = y16_to_u8(frame, (20, 40))
    assert out.dtype == np.uint8
    assert out[0].tolist()[:2] == [0, 0] and out[0, 3] == 255 and out[0, 4] == 255
    assert abs(int(out[0, 2]) - 127) <= 1
    # fixed window: a hot object entering the view does not change everybody else's grey level
    hot = frame.copy()
    hot[0, 4] = ck(90)
    assert y16_to_u8(hot, (20, 40))[0, 2] == out[0, 2]


def test_fix_y16_shape_reshapes_flattened_frames():
    good = np.arange(12, dtype=np.uint16).reshape(3, 4)
    assert fix_y16_shape(good.reshape(1, 12), 4, 3).tolist() == good.tolist()
    as_bytes = good.astype("<u2").view(np.uint8).reshape(1, -1)
    assert fix_y16_shape(as_bytes, 4, 3).tolist() == good.tolist()
    assert fix_y16_shape(np.zeros(7, np.uint16), 4, 3) is None


def test_prepare_frame_rejects_corrupt_and_converts():
    assert prepare_frame(None, "rgb", (20, 40), None) is None
    assert prepare_frame(np.zeros((4, 4, 2), np.uint8), "rgb", (20, 40), None) is None
    assert prepare_frame(np.zeros((4, 4, 3), np.float32), "rgb", (20, 40), None) is None
    assert prepare_frame(np.zeros((5, 4, 3), np.uint8), "rgb", (20, 40), (4, 4, 3)) is None  # wrong size mid-stream
    assert prepare_frame(np.zeros((4, 4), np.uint8), "rgb", (20, 40), None).shape == (4, 4, 3)
    y16 = np.full((4, 4), 30315, np.uint16)  # 30 deg C
    ir = prepare_frame(y16, "ir", (20, 40), None)
    assert ir.shape == (4, 4) and ir.dtype == np.uint8 and abs(int(ir[0, 0]) - 127) <= 1


# ------------------------------------------------------------------------------------------------ tracking


def _box(x, y, w=20, h=50, conf=0.9):
    return [x, y, x + w, y + h, conf]


def test_iou_matrix():
    iou = iou_matrix(np.array([[0, 0, 10, 10]]), np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]]))
    assert np.allclose(iou, [[1.0, 1 / 3, 0.0]])


def test_tracker_keeps_ids_through_motion_misses_and_low_confidence():
    tracker = IouTracker("rgb", max_misses=5)
    born, _ = tracker.update(np.array([_box(0, 0), _box(100, 0)]), 0.0)
    assert [t.id for t in born] == [1, 2]  # first frame: confirmed at once
    for f in range(1, 10):
        dets = [_box(3 * f, 0), _box(100 - 3 * f, 0, conf=0.3 if f == 5 else 0.9)]  # f=5: a low-score detection
        if f == 7:
            dets = dets[:1]  # person 2 missed once
        born, ended = tracker.update(np.array(dets), f / 10)
        assert not born and not ended
    boxes = {t.id: t.box for t in tracker.confirmed}
    assert boxes[1][0] == pytest.approx(27) and boxes[2][0] == pytest.approx(73)
    # a new person needs two hits; a one-frame blip never becomes a track
    assert tracker.update(np.array([_box(27, 0), _box(73, 0), _box(200, 100)]), 1.0) == ([], [])
    born, _ = tracker.update(np.array([_box(27, 0), _box(73, 0), _box(201, 100)]), 1.1)
    assert [t.id for t in born] == [3]
    # everybody leaves: tracks end after max_misses frames
    ended_ids = []
    for f in range(7):
        ended_ids += [t.id for t in tracker.update(np.zeros((0, 5)), 1.2 + f / 10)[1]]
    assert sorted(ended_ids) == [1, 2, 3] and tracker.tracks == []


def test_tracker_keeps_a_walker_whose_box_width_swings_with_the_stride():
    """Side view of a walker: the centre moves 6 px a frame while the tight box's width swings 12..30 px with the
    legs (as in SynthVI clips). Extrapolating the width too overshot and split such people into many tracks."""
    tracker = IouTracker("rgb")
    for f in range(40):
        cx, width = 20 + 6 * f, 21 + 9 * np.sin(2 * np.pi * 0.18 * f) * (-1) ** f
        tracker.update(np.array([[cx - width / 2, 60, cx + width / 2, 150, 0.9]]), f / 10)
    assert [t.id for t in tracker.tracks] == [1] and tracker.tracks[0].hits == 40


def test_tracker_follows_a_person_who_moves_more_than_their_width_per_frame():
    """A thermal camera at 5 fps: a walker crossing the view moves 11 px a frame with a 10 px wide box, so a new
    track (no velocity yet) never overlaps its next box. IoU alone never confirms such a person; nearness does,
    and two such people passing each other keep their own tracks."""
    def walk(tracker: IouTracker) -> list[int]:
        tracker.update(np.zeros((0, 5), np.float32), 0.0)  # they walk in after the first frame: warm-up applies
        for f in range(1, 13):
            dets = [[20 + 11 * f, 50, 30 + 11 * f, 93, 0.9], [170 - 11 * f, 55, 180 - 11 * f, 95, 0.9]]
            tracker.update(np.array(dets, np.float32), f / 5)
        return sorted(t.id for t in tracker.confirmed)

    assert walk(IouTracker("ir", reach=0.0)) == []  # IoU only: a new tentative track every frame
    tracker = IouTracker("ir")
    assert walk(tracker) == [1, 2]
    first, second = sorted(tracker.confirmed, key=lambda t: t.id)
    assert first.box[0] > second.box[0] and first.hits == second.hits == 12  # crossed, each still their own


# a far walker's detections in a SynthVI `separate` clip (seed 8181, clip 2, RGB frames 44-63: x, y, w, h): a box
# 7-13 px wide whose top jitters by up to 7 px, missed by the detector at frames 55 and 60
FAR_WALKER = {44: (74.5, 61.1, 12.9, 39.1), 45: (79.6, 59.7, 9.3, 42.0), 46: (82.1, 57.4, 8.7, 41.1),
              47: (82.4, 62.4, 12.8, 39.7), 48: (88.4, 62.8, 7.7, 39.1), 49: (90.3, 62.1, 10.5, 37.3),
              50: (92.0, 60.5, 11.9, 38.3), 51: (97.3, 59.9, 6.5, 41.6), 52: (96.2, 63.6, 11.9, 42.0),
              53: (99.7, 59.3, 10.3, 45.4), 54: (106.3, 66.5, 7.9, 42.2), 56: (110.0, 58.2, 8.5, 38.7),
              57: (112.9, 62.0, 9.0, 38.7), 58: (114.8, 61.9, 11.7, 36.8), 59: (119.5, 61.8, 8.1, 38.0),
              61: (123.2, 60.5, 10.9, 42.6), 62: (127.9, 60.8, 7.3, 39.8), 63: (129.3, 60.8, 9.8, 38.8)}


def test_tracker_keeps_a_thin_far_walker_the_detector_missed_for_a_frame():
    """One jittery box (54: 7 px low) turned the velocity downward, so after one missed frame the predicted box
    no longer overlapped the walker and a second track took them over. Two fixes, each enough on these boxes: a
    steadier velocity, and nearness (stage 1b) for a track missed for a frame or two."""
    def walk(tracker: IouTracker) -> list[int]:
        for f in range(44, 64):
            x, y, w, h = FAR_WALKER.get(f, (0.0, 0.0, 0.0, 0.0))
            dets = np.array([[x, y, x + w, y + h, 0.9]] if f in FAR_WALKER else [], np.float32).reshape(-1, 5)
            tracker.update(dets, f / 15, (256, 192))
        return sorted(t.id for t in tracker.confirmed)

    assert walk(IouTracker("rgb", recover=0, steadiness=0.5)) == [1, 2]  # as it was: split in two
    assert walk(IouTracker("rgb", recover=0)) == [1]
    assert walk(IouTracker("rgb", steadiness=0.5)) == [1]
    assert walk(IouTracker("rgb")) == [1]


def test_a_track_last_seen_at_the_image_edge_is_not_revived_by_someone_walking_in_there():
    """Nearness takes back a person missed for a frame or two, but not one last seen at the image edge: they
    walked out, and whoever walks in there next is someone else (a new track, and a new identity)."""
    tracker = IouTracker("rgb")
    for f in range(10):  # walks right and out of a 256-px-wide view; the box is cut by the edge at the end
        x1 = 216 + 4 * f
        tracker.update(np.array([[x1, 60, min(x1 + 10, 256), 100, 0.9]], np.float32), f / 15, (256, 192))
    (leaver,) = tracker.confirmed
    assert leaver.box[2] == 256
    tracker.update(np.zeros((0, 5), np.float32), 10 / 15, (256, 192))
    for f in range(11, 14):  # someone walks in at the same edge
        x1 = 246 - 4 * (f - 11)
        tracker.update(np.array([[x1, 61, 256, 101, 0.9]], np.float32), f / 15, (256, 192))
    assert leaver.misses == 4 and sorted(t.id for t in tracker.confirmed) == [1, 2]
    # in the middle of the view, a thin walker missed for a frame while they stopped is taken back: the predicted
    # box walked on and overlaps them no more
    tracker = IouTracker("rgb")
    for f in range(14):
        x1 = 100 + 6 * min(f, 10)
        dets = np.array([[x1, 60, x1 + 6, 100, 0.9]] if f != 10 else [], np.float32).reshape(-1, 5)
        tracker.update(dets, f / 15, (256, 192))
    assert [t.id for t in tracker.confirmed] == [1]


def test_ema_update_is_normalised_and_slow():
    a, b = np.array([1.0, 0.0], np.float32), np.array([0.0, 1.0], np.float32)
    first = ema_update(None, a)
    assert np.allclose(first, a)
    mixed = ema_update(first, b, 0.9)
    assert np.linalg.norm(mixed) == pytest.approx(1.0)
    assert mixed[0] > 0.99 * 0.9 / np.hypot(0.9, 0.1) and mixed[1] == pytest.approx(0.1 / np.hypot(0.9, 0.1))
    # bias-corrected: after one sample, the second weighs (1 - 0.9) / (1 - 0.81) = 0.526, not 0.1 ...
    corrected = ema_update(first, b, 0.9, count=1)
    assert corrected[1] / corrected[0] == pytest.approx(0.1 / 0.09)
    # ... and a long-lived track's embedding moves like the plain EMA
    assert np.allclose(ema_update(first, b, 0.9, count=200), mixed, atol=1e-6)


# ------------------------------------------------------------------------------------------------ association


def _track(cam, tid, vec, matcher):
    tr = Track(tid, cam, np.zeros(4, np.float32), 1.0, 0.0, 0.0, confirmed=True)
    matcher.register(tr)
    tr.look.embedding = np.asarray(vec, np.float32) / np.linalg.norm(vec)
    return tr


def _refresh(*tracks):
    for tr in tracks:
        tr.look.count += 1


def test_matcher_confirms_after_k_and_gates():
    m = CrossMatcher(threshold=0.3, confirm=3)
    r1, r2 = _track("rgb", 1, [1, 0, 0], m), _track("rgb", 2, [0, 1, 0], m)
    i1, i2 = _track("ir", 1, [0.95, 0.05, 0], m), _track("ir", 2, [0, 0, 1], m)  # i2 matches nobody (gate)
    events = []
    for step in range(3):
        _refresh(r1, r2, i1, i2)
        events += m.update([r1, r2], [i1, i2], float(step))
        if step < 2:
            assert events == []  # not yet: hysteresis
    assert [(e["event"], e["rgb_track"], e["ir_track"]) for e in events] == [("match", 1, 1)]
    assert r1.gid == i1.gid == min(r1.own_gid, i1.own_gid)
    assert i2.gid == i2.own_gid
    # no new evidence -> the streak does not grow and nothing changes
    assert m.update([r1, r2], [i1, i2], 3.0) == []


def test_matcher_needs_one_update_fewer_where_geometry_or_time_vouches():
    from hicmd.runtime.fusion import Scores

    def scorer(backed):
        def score(rgb, ir):
            appearance = np.full((len(rgb), len(ir)), 0.2)
            allowed = np.ones_like(appearance, bool)
            cue = np.full(appearance.shape, "geometry" if backed else "appearance", object)
            return Scores(appearance, allowed, appearance, None, voucher=cue)
        return score

    for backed, needed in ((False, 3), (True, 2)):
        m = CrossMatcher(threshold=0.3, confirm=3, scorer=scorer(backed))
        r, i = _track("rgb", 1, [1, 0], m), _track("ir", 1, [1, 0], m)
        steps = 0
        while not m.matches:
            _refresh(r, i)
            m.update([r], [i], float(steps))
            steps += 1
        assert steps == needed


def test_matcher_counts_only_fresh_evidence_and_expires():
    m = CrossMatcher(threshold=0.3, confirm=2)
    r, i = _track("rgb", 1, [1, 0], m), _track("ir", 7, [1, 0.1], m)
    for step in range(5):  # the same embeddings over and over are one piece of evidence, not five
        assert m.update([r], [i], float(step)) == []
    _refresh(i)
    assert [e["event"] for e in m.update([r], [i], 6.0)] == ["match"]
    # the pair stops agreeing: ends after `confirm` fresh disagreeing updates, and ids go back
    i.look.embedding = np.array([0.0, 1.0], np.float32)
    _refresh(i)
    assert m.update([r], [i], 7.0) == []
    _refresh(i)
    lost = m.update([r], [i], 8.0)
    assert [(e["event"], e["reason"]) for e in lost] == [("match_lost", "disagree")]
    assert r.gid == r.own_gid and i.gid == i.own_gid


def test_matcher_track_end_expires_match():
    m = CrossMatcher(threshold=0.5, confirm=1)
    r, i = _track("rgb", 1, [1, 0], m), _track("ir", 1, [1, 0], m)
    _refresh(r, i)
    assert m.update([r], [i], 0.0)[0]["event"] == "match"
    lost = m.track_ended(i, 2.0)
    assert lost[0]["reason"] == "track_end" and lost[0]["duration_s"] == 2.0
    assert m.matches == {} and r.gid == r.own_gid


def test_a_track_splits_sooner_where_someone_was_close_enough_to_swap_with():
    def settled() -> Appearance:
        look = Appearance()
        for _ in range(3):
            look.add(np.array([1.0, 0.0], np.float32), 0.9)
        return look

    other = np.array([0.0, 1.0], np.float32)  # far beyond the split gate from the settled look
    crossed, alone = settled(), settled()
    assert [crossed.judge(other, 0.5, crowded=True) for _ in range(2)] == ["odd", "changed"]
    assert [alone.judge(other, 0.5, crowded=False) for _ in range(4)] == ["odd", "odd", "odd", "changed"]
    back = settled()
    verdicts = [back.judge(v, 0.5, crowded=False) for v in (other, other, other, np.array([1.0, 0.1], np.float32))]
    assert verdicts == ["odd", "odd", "odd", "same"] and back.outliers == 0


def test_crowded_and_whole_in_frame():
    a = Track(1, "rgb", np.array([10, 10, 50, 100], np.float32), 1.0, 0.0, 0.0)
    b = Track(2, "rgb", np.array([45, 20, 85, 110], np.float32), 1.0, 0.0, 0.0)
    far = Track(3, "rgb", np.array([200, 20, 240, 110], np.float32), 1.0, 0.0, 0.0)
    assert crowded(a, [a, b, far]) and not crowded(a, [a, far]) and not crowded(far, [a, b, far])
    b.misses = 1  # a person not seen in this frame crowds no one
    assert not crowded(a, [a, b])
    assert whole_in_frame(a, (256, 192)) and not whole_in_frame(far, (240, 192))


def test_a_global_id_outlives_the_track_that_lost_its_person():
    m = CrossMatcher(threshold=0.5, confirm=1)
    r1, i = _track("rgb", 1, [1, 0], m), _track("ir", 1, [1, 0], m)
    _refresh(r1, i)
    m.update([r1], [i], 0.0)
    gid = i.gid
    m.track_ended(r1, 1.0)  # the RGB tracker lost the person; the IR camera still sees them
    assert i.gid == gid
    r2 = _track("rgb", 2, [1, 0.05], m)  # the RGB tracker picks them up again as a new track
    _refresh(r2, i)
    assert [e["event"] for e in m.update([r2], [i], 2.0)] == ["match"]
    assert r2.gid == i.gid == gid and r2.own_gid != gid


def test_matcher_hungarian_prefers_global_optimum():
    m = CrossMatcher(threshold=0.9, confirm=1)
    # greedy would give r1 the i1 (0.99) and leave r2 with a bad i2; Hungarian pairs r1-i2, r2-i1
    r1, r2 = _track("rgb", 1, [1, 0.2], m), _track("rgb", 2, [1, -0.5], m)
    i1, i2 = _track("ir", 1, [1, -0.3], m), _track("ir", 2, [1, 0.5], m)
    _refresh(r1, r2, i1, i2)
    pairs = {(e["rgb_track"], e["ir_track"]) for e in m.update([r1, r2], [i1, i2], 0.0)}
    assert pairs == {(1, 2), (2, 1)}


def test_matcher_holds_a_match_while_a_track_coasts_and_hands_it_to_the_new_track():
    m = CrossMatcher(threshold=0.3, confirm=2)
    r1, i1 = _track("rgb", 1, [1, 0], m), _track("ir", 1, [1, 0.05], m)
    for step in range(2):
        _refresh(r1, i1)
        events = m.update([r1], [i1], float(step))
    assert [e["event"] for e in events] == ["match"]
    gid = r1.gid
    # the RGB person is hidden: the IR side keeps bringing evidence, the match is held, not ended as "disagree"
    r1.misses = 1
    r2 = _track("rgb", 2, [1, 0.02], m)  # ... and the tracker starts a new track when they reappear
    events = []
    for step in range(2, 4):
        _refresh(i1, r2)
        events += m.update([r1, r2], [i1], float(step))
    assert [(e["event"], e.get("reason"), e["rgb_track"]) for e in events] == [
        ("match_lost", "handover", 1), ("match", None, 2)]
    assert r2.gid == i1.gid == gid and r1.gid == r1.own_gid  # the person keeps the id they had


def test_scorer_judges_a_match_over_the_frames_it_was_held():
    # RGB track 1 and IR track 1 both switch from person 5 to person 3 where the two cross (frame 50)
    frames_rgb = {1: {f: (5 if f < 50 else 3) for f in range(1, 101)}, 2: {f: 5 for f in range(55, 101)}}
    frames_ir = {1: {f: (5 if f < 50 else 3) for f in range(1, 101)}, 2: {f: 5 for f in range(55, 101)}}
    new = [{"event": "track_new", "t": f0 / 10, "camera": cam, "track": tid} for cam in ("rgb", "ir")
           for tid, f0 in ((1, 1), (2, 55))]
    end = [{"event": "track_end", "t": 10.0, "last_seen": 10.0, "camera": cam, "track": tid}
           for cam in ("rgb", "ir") for tid in (1, 2)]

    def match(r, i, f0, f1, cue="geometry"):
        return [{"event": "match", "rgb_track": r, "ir_track": i, "rgb_frame": f0, "ir_frame": f0, "cue": cue},
                {"event": "match_lost", "rgb_track": r, "ir_track": i, "rgb_frame": f1, "ir_frame": f1}]

    right = score_matches(new + match(1, 1, 10, 45) + match(2, 2, 60, 100, "entered") + end, frames_rgb, frames_ir)
    assert (right.correct, right.matches) == (2, 2)
    # person 5's tracks do not match the same tracks after they switched to person 3
    wrong = score_matches(new + match(1, 2, 60, 100) + match(2, 1, 60, 100, "entered") + end, frames_rgb, frames_ir)
    assert (wrong.correct, wrong.matches) == (0, 2)
    # each cue that let a pair in is scored on its own
    assert right.by_cue == {"entered": {"matches": 1, "correct": 1}, "geometry": {"matches": 1, "correct": 1}}
    mixed = score_matches(new + match(1, 1, 10, 45) + match(2, 1, 60, 100, "entered") + end, frames_rgb, frames_ir)
    assert mixed.by_cue == {"entered": {"matches": 1, "correct": 0}, "geometry": {"matches": 1, "correct": 1}}
    # recall: pairs of tracks of the same (majority) person seen together >= 2 s, here 1-1 and 2-2
    assert (right.positives, right.found, right.recall) == (2, 2, 1.0)
    assert (wrong.positives, wrong.found, wrong.recall) == (2, 0, 0.0)
    # each wrong match is listed with whom its tracks followed and how long after the fit in use it came
    assert right.wrong == []
    fit = [{"event": "calibration", "t": 5.5, "status": "refitted", "source": "self"}]
    listed = score_matches(new + fit + [dict(match(2, 1, 60, 100)[0], t=6.0), match(2, 1, 60, 100)[1]] + end,
                           frames_rgb, frames_ir).wrong
    assert listed == [{"t": 6.0, "cue": "geometry", "rgb_track": 2, "ir_track": 1, "rgb_person": 5, "ir_person": 3,
                       "after_fit_s": 0.5}]
    dropped = [{"event": "calibration", "t": 5.8, "status": "dropped", "source": "self"}]
    assert score_matches(new + fit + dropped + match(2, 1, 60, 100) + end, frames_rgb,
                         frames_ir).wrong[0]["after_fit_s"] is None  # no fit in use when it was made


# ------------------------------------------------------------------------------------------------ events, gallery


def test_event_log_schema_and_json_lines():
    sink = io.StringIO()
    log = EventLog(sink)
    samples = {
        "track_new": {"t": 0.1, "camera": "rgb", "track": 1, "gid": 1, "box": [0, 0, 1, 1], "frame": 1},
        "track_end": {"t": 2, "camera": "ir", "track": 1, "gid": 2, "hits": 5, "duration_s": 1.9,
                      "last_seen": 1.95},
        "match": {"t": 1.0, "gid": 1, "rgb_track": 1, "ir_track": 1, "distance": 0.2, "name": None, "rgb_frame": 10,
                  "ir_frame": 5},
        "match_lost": {"t": 1.5, "gid": 1, "rgb_track": 1, "ir_track": 1, "reason": "disagree", "duration_s": 0.5,
                       "rgb_frame": 15, "ir_frame": 8},
        "stats": {"cameras": {}, "stages": {}, "live_tracks": {}, "matches": 0},
        "source_down": {"camera": "ir", "source": "udp://x", "reason": "timeout"},
        "source_up": {"camera": "ir", "source": "udp://x", "down_s": 1.2},
        "calibration": {"t": 12.5, "status": "fitted", "source": "self", "reprojection_px": 1.7, "inliers": 20,
                        "pairs": 24},
        "named": {"t": 3.0, "camera": "ir", "track": 2, "gid": 2, "name": "carol", "distance": 0.41, "frame": 30},
    }
    assert set(samples) == set(SCHEMA)
    for kind, fields in samples.items():
        log.emit({"event": kind, **fields})
    lines = sink.getvalue().splitlines()
    assert len(lines) == len(samples)
    for line in lines:
        validate_event(json.loads(line))
    assert log.counts["match"] == 1
    with pytest.raises(ValueError, match="lacks 'gid'"):
        validate_event({"event": "match", "time": 1.0, "t": 1.0})
    with pytest.raises(ValueError, match="unknown event"):
        validate_event({"event": "nope", "time": 1.0})
    with pytest.raises(ValueError, match="should be"):
        validate_event({**json.loads(lines[0]), "track": "one"})


def test_an_events_file_cut_mid_line_is_continued_on_a_new_line_and_read_around_the_cut(tmp_path):
    """A run killed mid-line (or a full disk) leaves a cut last event; the next run appends to the same file: its
    first event must not be glued onto the cut one, and reading skips the cut line alone (scoring counts it)."""
    from hicmd.runtime.matchscore import read_events

    path = tmp_path / "events.jsonl"
    path.write_text('{"event":"track_new","t":0.1,"camera":"ir","track":1}\n{"event":"match","t":1.0,"rgb_tr')
    log = EventLog(path)
    log.emit({"event": "track_new", "t": 2.0, "camera": "rgb", "track": 3, "gid": 3, "box": [0, 0, 1, 1],
              "frame": 20})
    log.close()
    events = read_events(path)
    assert [e["event"] for e in events] == ["track_new", "unreadable", "track_new"]
    assert events[1]["line"] == 2 and events[2]["track"] == 3
    assert score_matches(events, {}, {}).matches == 0  # the cut match is not scored


class _ColourEmbedder:
    def embed(self, crops, modality):
        vecs = np.array([c.reshape(-1, 3).mean(0) + 1.0 for c in crops], np.float32)
        return vecs / np.linalg.norm(vecs, axis=1, keepdims=True)


def test_gallery_files_are_private_and_identify(tmp_path):
    root = tmp_path / "gallery"
    red = np.zeros((40, 20, 3), np.uint8)
    red[..., 2] = 255
    blue = np.zeros((40, 20, 3), np.uint8)
    blue[..., 0] = 255
    p1 = save_crop(root, "alice", red, "rgb", "1")
    save_crop(root, "bob", blue, "rgb", "1")
    assert stat.S_IMODE(p1.stat().st_mode) == 0o600
    assert stat.S_IMODE(root.stat().st_mode) == 0o700 and stat.S_IMODE((root / "alice").stat().st_mode) == 0o700
    with pytest.raises(GalleryError):
        save_crop(root, "../evil", red, "rgb")
    gallery = Gallery(root, _ColourEmbedder(), threshold=0.1)
    assert len(gallery) == 2
    name, dist = gallery.identify(_ColourEmbedder().embed([red], "rgb")[0])
    assert name == "alice" and dist < 1e-5
    green = np.zeros((4, 4, 3), np.uint8)
    green[..., 1] = 255
    assert gallery.identify(_ColourEmbedder().embed([green], "rgb")[0])[0] is None


# ------------------------------------------------------------------------------------------------ pairing, buffers


def _frame(cam, t, index=0):
    return Frame(cam, index, t, np.zeros((2, 2), np.uint8))


def test_pairer_nearest_within_tolerance():
    pairer = Pairer(tolerance=0.02)
    for k in range(6):
        pairer.push(_frame("rgb", k / 30))  # 30 fps
    for t in (0.001, 0.105, 0.5):  # ~9 Hz thermal with jitter; 0.5 is far beyond the last rgb frame
        pairer.push(_frame("ir", t))
    pairs = pairer.pop()
    got = [(None if r is None else round(r.t, 3), None if i is None else i.t) for r, i in pairs]
    assert got[0] == (0.0, 0.001)
    assert (0.1, 0.105) in got
    assert got.count((None, 0.5)) == 0  # undecided: rgb may still deliver a frame near 0.5
    assert len([g for g in got if g[0] is not None]) == 6
    assert pairer.pop(ended={"rgb"}) and not any(pairer.buffers.values())


def test_frame_buffer_policies():
    import threading

    stop = threading.Event()
    newest = FrameBuffer(1, drop_oldest=True)
    for k in range(5):
        newest.put(_frame("rgb", k), stop)
    assert newest.dropped == 4 and newest.get(0).t == 4 and newest.get(0) is None
    ordered = FrameBuffer(2, drop_oldest=False)
    ordered.put(_frame("rgb", 0), stop)
    ordered.put(_frame("rgb", 1), stop)
    stop.set()
    ordered.put(_frame("rgb", 2), stop)  # full + stopping: returns instead of blocking, drops nothing counted
    assert [ordered.get(0).t, ordered.get(0).t] == [0, 1] and ordered.dropped == 0


# ------------------------------------------------------------------------------------------------ detection


def test_mot_detections_file(tmp_path):
    path = tmp_path / "det.txt"
    path.write_text("1,-1,10,20,30,40,0.9,-1,-1,-1\n1,-1,0,0,5,5,0.3,-1,-1,-1\n3,-1,1,2,3,4,0.5,-1,-1,-1\n")
    det = FileDetections(path)
    assert np.allclose(det.detect(None, 1), [[10, 20, 40, 60, 0.9], [0, 0, 5, 5, 0.3]])
    assert det.detect(None, 2).shape == (0, 5)
    assert read_mot(path)[3][0, :4].tolist() == [1, 2, 4, 6]
    with pytest.raises(DetectorError, match="no such"):
        FileDetections(tmp_path / "missing.txt")


def test_parse_yolo_layouts():
    v8 = np.zeros((1, 6, 8), np.float32)  # 4 box + 2 classes, 8 anchors (channels first)
    v8[0, :, 0] = [50, 60, 10, 20, 0.9, 0.1]
    v8[0, :, 1] = [5, 5, 2, 2, 0.1, 0.95]  # a confident non-person
    rows = parse_yolo(v8, 0.25)
    assert np.allclose(rows, [[50, 60, 10, 20, 0.9]])
    v5 = np.zeros((1, 9, 7), np.float32)  # 9 anchors x (4 box + objectness + 2 classes)
    v5[0, 0] = [50, 60, 10, 20, 0.8, 0.5, 0.5]  # obj 0.8 * person 0.5 = 0.4
    v5[0, 1] = [5, 5, 2, 2, 0.9, 0.1, 0.9]
    assert np.allclose(parse_yolo(v5, 0.25), [[50, 60, 10, 20, 0.4]])


def test_onnx_detector_end_to_end(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    # a stand-in "YOLOv8": ignores the image and outputs one person box at (320, 240) in a 640x640 letterbox
    out = np.zeros((1, 5, 16), np.float32)
    out[0, :, 0] = [320, 320, 100, 200, 0.9]
    graph = helper.make_graph(
        [helper.make_node("Constant", [], ["output0"], value=numpy_helper.from_array(out))], "fake",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 640, 640])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 5, 16])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "det.onnx")
    det = OnnxDetector(tmp_path / "det.onnx")
    boxes = det.detect(np.zeros((480, 640, 3), np.uint8), 1)  # letterbox: scale 1, 80 px top padding
    assert boxes.shape == (1, 5)
    assert boxes[0, :4].tolist() == pytest.approx([270, 140, 370, 340])
    assert det.detect(np.zeros((240, 320), np.uint8), 1).shape == (1, 5)  # grey IR frames work too
    # it runs between the embedders: its idle threads sleep rather than take their cores (runtime/backends)
    assert det.session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning") == "0"
    with pytest.raises(DetectorError):
        OnnxDetector(tmp_path / "missing.onnx")


def test_hog_detector_runs():
    from hicmd.runtime.detect import HogDetector

    image = np.full((256, 192, 3), 127, np.uint8)
    cv2.rectangle(image, (70, 40), (120, 220), (20, 20, 20), -1)
    out = HogDetector().detect(image, 1)
    assert out.ndim == 2 and out.shape[1] == 5 and out.dtype == np.float32
