"""Unit tests of the cross-camera association (confirmation, gates, splits, hand-over, the Hungarian
assignment) and of the scorer that judges a match over the frames it was held."""

from __future__ import annotations

import numpy as np

from hicmd.runtime.associate import CrossMatcher
from hicmd.runtime.matchscore import score_matches
from hicmd.runtime.track import Appearance, Track, crowded, whole_in_frame

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
