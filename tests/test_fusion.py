"""Fused association (appearance + time + geometry) and online self-calibration, on hand-made tracks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hicmd.runtime.associate import CrossMatcher
from hicmd.runtime.crossview import CrossView
from hicmd.runtime.events import JSON_SCHEMA
from hicmd.runtime.fusion import BACKERS, VOUCHERS, AloneTogether, FootHistory, FusionOptions, fused_scores
from hicmd.runtime.geometry import Calibration, fit_calibration
from hicmd.runtime.selfcal import SelfCalibrator, SelfCalOptions
from hicmd.runtime.track import Appearance, Track

H = np.array([[0.8, 0.02, 20.0], [0.01, 0.8, 10.0], [0.0, 1e-4, 1.0]])  # RGB -> IR ground homography
CAL = Calibration(H, (640, 480), (512, 384), 1.0, 50, 50)


def _unit(v) -> np.ndarray:
    v = np.asarray(v, np.float32)
    return v / np.linalg.norm(v)


def _track(tid: int, camera: str, foot: tuple[float, float], emb, first_t: float = 0.0, height: float = 80.0) -> Track:
    x, y = foot
    return Track(tid, camera, np.array([x - 15, y - height, x + 15, y], np.float32), 0.9, first_t, first_t,
                 confirmed=True, look=Appearance(_unit(emb)))


def _ir_of(rgb_foot) -> tuple[float, float]:
    return tuple(CAL.rgb_to_ir(np.array([rgb_foot]))[0])


def test_geometry_gates_out_a_pair_that_appearance_likes_and_lets_in_one_it_does_not():
    rgb = [_track(1, "rgb", (100, 300), [1, 0, 0]), _track(2, "rgb", (400, 350), [0, 1, 0])]
    # IR track 1 looks exactly like RGB 1 but stands where RGB 2 is; IR track 2 stands where RGB 1 is and
    # looks only vaguely like it (distance ~0.9, a weak model on an unseen person)
    ir = [_track(1, "ir", _ir_of((400, 350)), [1, 0, 0], height=64), _track(2, "ir", _ir_of((100, 300)),
                                                                         [0.1, 0.2, 1.0], height=64)]
    opts = FusionOptions(cues="geometry", appearance_gate=0.5)
    appearance_only = fused_scores(rgb, ir, FusionOptions(cues="appearance", appearance_gate=0.5), None)
    assert appearance_only.allowed[0, 0] and not appearance_only.allowed[0, 1]  # appearance would pair 1 with 1
    fused = fused_scores(rgb, ir, opts, CAL)
    assert not fused.allowed[0, 0]  # a metre apart on the ground: impossible, however alike
    assert fused.allowed[0, 1] and fused.geometry[0, 1] < 0.05
    matcher = CrossMatcher(0.5, confirm=1, scorer=lambda r, i: fused_scores(r, i, opts, CAL))
    for t in (0.0, 0.1):
        rgb[0].look.count = ir[1].look.count = int(t * 10) + 1
        matcher.update(rgb, ir, t)
    assert (1, 2) in matcher.matches and (1, 1) not in matcher.matches  # (2, 1): geometry places them together


def _left_fit() -> Calibration:
    """A self-fitted map from two walkers on the left of the ground: exact there, a guess on the far right."""
    rng = np.random.default_rng(5)
    t = np.linspace(0, 1, 40)
    paths = np.r_[np.c_[60 + 180 * t, 280 + 150 * t], np.c_[80 + 140 * t, 450 - 120 * t]]
    return fit_calibration(paths, CAL.rgb_to_ir(paths) + rng.normal(0, 1.0, (80, 2)), (640, 480), (512, 384))


def test_geometry_vouches_only_where_the_fit_is_sure():
    """A pair the map places together where it is a guess is judged by appearance alone (on SynthVI's separate rig,
    a person only the RGB camera saw, far from the fitted paths, was mapped onto an IR person and matched)."""
    fit = _left_fit()
    opts = FusionOptions(cues="geometry", appearance_gate=0.5)
    for rgb_foot, sure in (((150, 330), True), ((600, 150), False)):
        ir_foot = tuple(fit.rgb_to_ir(np.array([rgb_foot], float))[0])  # where the fit puts them: geometry 0
        rgb = [_track(1, "rgb", rgb_foot, [1, 0, 0])]
        unlike, alike = _track(1, "ir", ir_foot, [0.1, 1, 0], height=40), _track(2, "ir", ir_foot, [1, 0.2, 0],
                                                                                height=40)
        scores = fused_scores(rgb, [unlike, alike], opts, fit)
        assert scores.geometry[0].max() < 0.1 and scores.appearance[0, 0] > 0.5 > scores.appearance[0, 1]
        assert scores.allowed.tolist() == [[sure, True]]
        # and the match event says what let each pair in
        assert scores.voucher.tolist() == [["geometry", "geometry"] if sure else ["", "appearance"]]
        given = fused_scores(rgb, [unlike, alike], opts, Calibration(fit.homography, (640, 480), (512, 384), 1, 80, 80))
        assert given.allowed.tolist() == [[True, True]]  # a calibration file has no covariance: trusted everywhere


def test_with_geometry_a_held_match_ends_only_on_evidence_against_it():
    """A match stays while no cue rules it out: appearance drifting past its gate, or a look-alike walking in, is
    not evidence against it before any calibration (nor after a fit is dropped); trusted geometry that places the
    two apart is. On SynthVI's separate rig most matches that ended by disagreeing had been right (README)."""
    def run(cues: str, calibration: Calibration | None, ir_foot: tuple[float, float]) -> tuple[list[str], set]:
        rgb = _track(1, "rgb", (100, 300), [1, 0, 0])
        ir = _track(1, "ir", _ir_of((100, 300)), [0.95, 0.3, 0], height=64)  # cosine distance 0.05: alike
        cal = [None]
        opts = FusionOptions(cues=cues, appearance_gate=0.5)
        matcher = CrossMatcher(0.5, confirm=2, scorer=lambda r, i: fused_scores(r, i, opts, cal[0]))
        for track in (rgb, ir):
            matcher.register(track)
        events = []
        for step in range(2):
            rgb.look.count = ir.look.count = step + 1
            events += matcher.update([rgb], [ir], 0.2 * step)
        assert [e["event"] for e in events] == ["match"]
        # the IR person now looks unlike (distance 0.7 > the gate), a look-alike of the RGB one walks in, and
        # perhaps a calibration arrives
        ir.look.embedding, ir.box = _unit([0.3, 1, 0]), _track(1, "ir", ir_foot, [1, 0, 0], height=64).box
        rival = _track(2, "ir", (400, 50), [1, 0, 0], height=64)
        matcher.register(rival)
        cal[0] = calibration
        for step in range(2, 8):
            rgb.look.count = ir.look.count = rival.look.count = step + 1
            events += matcher.update([rgb], [ir, rival], 0.2 * step)
        return [e["event"] for e in events[1:]], set(matcher.matches)

    assert run("geometry", None, _ir_of((100, 300))) == ([], {(1, 1)})  # nothing against it: held
    # the person stands where the calibration puts them: held, the rival placed elsewhere never gets in
    assert run("geometry", CAL, _ir_of((100, 300))) == ([], {(1, 1)})
    # trusted geometry puts them 2 m apart: that is evidence, the match ends after `confirm` updates
    assert run("geometry", CAL, _ir_of((400, 420))) == (["match_lost"], set())
    # without geometry to come, appearance is all there is: past its gate the match ends, the look-alike takes over
    assert run("time", None, _ir_of((100, 300))) == (["match_lost", "match"], {(1, 2)})


def test_where_the_fit_is_a_guess_it_still_rules_out_two_people_it_places_far_apart():
    """A held match ends on evidence against it. Far from the paths a map was fitted on, where it places a foot is
    uncertain, but not by any amount: two people it places farther apart than the gate by several of its standard
    deviations are not one (on SynthVI's separate rig a wrong match made before the fit was held for 6 s with the
    two five box heights apart, where the map was a guess)."""
    fit, opts, height = _left_fit(), FusionOptions(cues="geometry"), 40.0
    rgb_foot = (600.0, 150.0)
    mapped = fit.rgb_to_ir(np.array([rgb_foot]))[0]
    sigma = float(fit.uncertainty_px(np.array([rgb_foot]))[0])
    assert sigma > opts.geometry_trust * height  # a guess here: it vouches for no one
    rgb = [_track(1, "rgb", rgb_foot, [1, 0, 0])]
    for off_sigmas, refuted in ((1.0, False), (opts.refute_sigmas + 1.0, True)):
        ir_foot = (mapped[0] + opts.geometry_gate * height + off_sigmas * sigma, mapped[1])
        scores = fused_scores(rgb, [_track(1, "ir", ir_foot, [1, 0, 0], height=height)], opts, fit)
        assert scores.geometry[0, 0] > opts.geometry_gate and scores.voucher[0, 0] not in BACKERS
        assert bool(scores.refuted[0, 0]) is refuted
    # a calibration file (no covariance) is trusted everywhere: beyond the gate is evidence, as before
    given = Calibration(fit.homography, (640, 480), (512, 384), 1, 80, 80)
    ir_foot = (mapped[0] + 1.5 * opts.geometry_gate * height, mapped[1])
    assert fused_scores(rgb, [_track(1, "ir", ir_foot, [1, 0, 0], height=height)], opts, given).refuted[0, 0]


def test_without_a_calibration_geometry_falls_back_to_appearance_and_time():
    rgb = [_track(1, "rgb", (100, 300), [1, 0, 0], first_t=5.0)]
    ir = [_track(1, "ir", (300, 200), [0.9, 0.3, 0], first_t=5.2), _track(2, "ir", (50, 50), [0.9, 0.3, 0],
                                                                            first_t=1.0)]
    scores = fused_scores(rgb, ir, FusionOptions(cues="geometry"), None)
    assert scores.geometry is None
    assert scores.allowed.tolist() == [[True, True]]  # the appearance gate alone
    assert scores.cost[0, 0] < scores.cost[0, 1]  # but who entered the views together is preferred
    assert np.allclose(fused_scores(rgb, ir, FusionOptions(cues="appearance"), None).cost, scores.appearance)


def test_people_who_enter_both_views_together_may_match_before_any_calibration():
    opts = FusionOptions(cues="time", appearance_gate=0.3, entry_gate_s=0.5)
    rgb = [_track(1, "rgb", (100, 300), [1, 0], first_t=5.0), _track(2, "rgb", (300, 300), [1, -0.3], first_t=0.0)]
    ir = [_track(1, "ir", (90, 250), [0.3, 1], first_t=5.3), _track(2, "ir", (250, 250), [0.2, 1], first_t=0.0)]
    rgb[0].entered = ir[0].entered = True  # came into view at 5.0 / 5.3 s; the others were there from the start
    scores = fused_scores(rgb, ir, opts, None)
    assert scores.appearance[0, 0] > opts.appearance_gate  # appearance alone would not let them match
    assert scores.allowed.tolist() == [[True, False], [False, False]]  # people there from the start have no entry
    assert scores.voucher[0, 0] == "entered"
    late = _track(3, "ir", (300, 250), [0.3, 1], first_t=4.8)
    late.entered = True  # a second person entering at the same moment: the entry no longer says who is who
    assert not fused_scores(rgb, ir + [late], opts, None).allowed[0].any()
    late.first_t = 6.1  # a second later: trackers confirm people a few frames apart, so still too close to tell
    assert not fused_scores(rgb, ir + [late], opts, None).allowed[0].any()
    late.first_t = 7.2
    assert fused_scores(rgb, ir + [late], opts, None).allowed[0].tolist() == [True, False, False]
    assert not fused_scores(rgb, ir, FusionOptions(cues="appearance", appearance_gate=0.3), None).allowed.any()


def test_a_rival_hidden_for_a_moment_still_makes_an_entry_ambiguous():
    """Two people enter the RGB view with the one who enters the IR view; the right partner is occluded this
    round (not among the pairs scored), the other is seen by the RGB camera only. The entry cue must not hand the
    IR person to the one left in view: the hidden rival is still present."""
    opts = FusionOptions(cues="time", appearance_gate=0.3, entry_gate_s=0.5)
    seen = _track(1, "rgb", (100, 300), [1, 0], first_t=4.8)
    hidden = _track(2, "rgb", (300, 300), [1, 0], first_t=4.8)
    hidden.misses = 2  # coasting: hidden behind someone
    ir = [_track(1, "ir", (250, 250), [0.3, 1], first_t=4.8)]
    seen.entered = hidden.entered = ir[0].entered = True
    assert fused_scores([seen], ir, opts, None).allowed.tolist() == [[True]]  # blind to the hidden rival
    assert fused_scores([seen], ir, opts, None, present=([seen, hidden], ir)).allowed.tolist() == [[False]]


def test_an_entry_proves_nothing_while_someone_there_from_the_start_is_unmatched():
    """The IR camera shows a person from its first frame; they walk into the RGB view at 5.0 s just as someone the
    IR camera alone sees walks into its view. The entrants came in together, but the IR person there from the start
    may be the RGB entrant's partner: their own entry was never seen. Once that person is accounted for (matched
    to someone there from the start in the RGB view), the entry decides again."""
    def people(with_partner: bool):
        waiting = _track(1, "ir", (250, 250), [0.1, 1, 0])  # there from the start: entered stays False
        newcomer = _track(2, "ir", (90, 250), [0.3, 1, 0], first_t=5.2)
        entrant = _track(1, "rgb", (100, 300), [1, 0, 0], first_t=5.0)
        entrant.entered = newcomer.entered = True
        rgb = [entrant] + ([_track(2, "rgb", (300, 300), [0.1, 1, 0.02])] if with_partner else [])
        return rgb, [waiting, newcomer]

    for with_partner in (False, True):
        view = CrossView(FusionOptions(cues="time", appearance_gate=0.3, entry_gate_s=0.5), confirm=1)
        rgb, ir = people(with_partner)
        for track in rgb + ir:
            view.register(track)
        for step in range(3):
            for track in rgb + ir:
                track.look.count = step + 1  # fresh embeddings every round
            view.update(rgb, ir, 5.5 + 0.2 * step)
        assert ((1, 1) in view.matches) is False  # the entrant never takes the person waiting on appearance
        assert ((1, 2) in view.matches) is with_partner
        assert ((2, 1) in view.matches) is with_partner  # alike (distance < 0.3): matched on appearance


def test_people_alone_in_both_views_at_once_may_match_before_any_calibration():
    # the lone walker: there from the start (no entry time) and nobody else to calibrate with
    rgb = _track(1, "rgb", (100, 300), [1, 0], first_t=0.0)
    ir = _track(7, "ir", (90, 250), [0.2, 1], first_t=0.0)
    opts = FusionOptions(cues="time", appearance_gate=0.3, alone_s=1.0)
    alone = AloneTogether(opts.alone_s)
    for k in range(10):  # 0.9 s alone together: not yet
        alone.update([rgb], [ir], k * 0.1)
    scores = fused_scores([rgb], [ir], opts, None, alone=frozenset(alone.pairs))
    assert scores.appearance[0, 0] > opts.appearance_gate and not scores.allowed.any()
    alone.update([rgb], [ir], 1.0)
    assert fused_scores([rgb], [ir], opts, None, alone=frozenset(alone.pairs)).allowed.tolist() == [[True]]
    # earned once, kept when someone else walks in; never on appearance alone; too unlike is still refused
    other = _track(2, "rgb", (300, 300), [1, 0.3], first_t=1.5)  # as unlike the IR person as RGB 1 is
    alone.update([rgb, other], [ir], 1.5)
    assert fused_scores([rgb, other], [ir], opts, None, alone=frozenset(alone.pairs)).allowed.tolist() == [[True],
                                                                                                       [False]]
    assert not fused_scores([rgb], [ir], FusionOptions(cues="appearance", appearance_gate=0.3), None,
                            alone=frozenset(alone.pairs)).allowed.any()
    far = _track(8, "ir", (90, 250), [-1, 0.05], first_t=0.0)
    assert not fused_scores([rgb], [far], opts, None, alone=frozenset({(1, 8)})).allowed.any()
    alone.forget(ir)  # the track ended: its pairs go with it
    assert not alone.pairs


def test_the_stream_matches_a_lone_walker_before_any_calibration_and_not_on_appearance_alone():
    def run(cues: str) -> list[dict]:
        view = CrossView(FusionOptions(cues=cues, appearance_gate=0.3), confirm=3)
        view.start({"rgb": (640, 480), "ir": (512, 384)})
        rgb = _track(1, "rgb", (100, 300), [1, 0])
        ir = _track(4, "ir", (90, 250), [0.2, 1])  # cosine distance ~0.8: appearance alone says no
        view.register(rgb)
        view.register(ir)
        events = []
        for k in range(12):  # 1.1 s of the two alone in their views, fresh crops each step
            t = k * 0.1
            rgb.look.count += 1
            ir.look.count += 1
            events += view.tick([rgb], [ir], t)
            events += view.update([rgb], [ir], t)
        return [e for e in events if e["event"] == "match"]

    matches = run("time")
    assert [(m["rgb_track"], m["ir_track"]) for m in matches] == [(1, 4)]
    # alone together for FusionOptions.alone_s (0.75 s: earned at 0.8), then two agreeing updates (not three)
    assert matches[0]["t"] == pytest.approx(0.9)
    assert matches[0]["cue"] == "alone"  # the event says which cue let them in
    schema = json.loads(JSON_SCHEMA.read_text())["$defs"]["match"]["properties"]["cue"]["enum"]
    assert schema == list(VOUCHERS)  # and the shipped event schema knows every cue name
    assert run("appearance") == []


def test_alone_together_needs_one_person_per_view_without_a_break():
    alone = AloneTogether(1.0)
    rgb, ir = _track(1, "rgb", (100, 300), [1, 0]), _track(1, "ir", (90, 250), [1, 0])
    hidden = _track(2, "ir", (200, 250), [0, 1])
    hidden.misses, hidden.hits = 3, 20  # coasting: a person seen for 20 frames, now hidden behind someone
    for k in range(20):
        alone.update([rgb], [ir, hidden], k * 0.1)
    assert not alone.pairs
    for k in range(6):  # alone 0.5 s, then a second person shows up, then alone again for 0.5 s: no
        alone.update([rgb], [ir], 2.0 + k * 0.1)
    alone.update([rgb], [ir, hidden], 2.6)
    for k in range(6):
        alone.update([rgb], [ir], 2.7 + k * 0.1)
    assert not alone.pairs
    hidden.hits = 2  # ... but a box seen twice that vanished again is a false or doubled detection, not a person
    for k in range(6):
        alone.update([rgb], [ir, hidden], 3.3 + k * 0.1)
    assert alone.pairs == {(1, 1)}
    off = AloneTogether(0.0)
    for k in range(30):
        off.update([rgb], [ir], k * 0.1)
    assert not off.pairs


def test_velocity_disagreement_raises_the_cost():
    history = FootHistory()
    rgb = _track(1, "rgb", (100, 300), [1, 0, 0])
    same, other = _track(1, "ir", _ir_of((100, 300)), [1, 0, 0]), _track(2, "ir", _ir_of((100, 300)), [1, 0, 0])
    for k in range(8):  # RGB walks right; IR 1 moves the same way on the ground, IR 2 the other way
        t = k * 0.1
        rgb.box[[0, 2]] += 6
        foot = ((rgb.box[0] + rgb.box[2]) / 2, rgb.box[3])
        fx, fy = _ir_of(foot)
        same.box[:] = [fx - 12, fy - 64, fx + 12, fy]
        ox = 2 * _ir_of((100, 300))[0] - fx
        other.box[:] = [ox - 12, fy - 64, ox + 12, fy]
        history.add([rgb, same, other], t)
    scores = fused_scores([rgb], [same, other], FusionOptions(cues="geometry", geometry_gate=5.0), CAL, history)
    assert scores.cost[0, 0] + 0.1 < scores.cost[0, 1]


def _walkers(n: int, rng: np.random.Generator):
    start = rng.uniform([60, 220], [580, 460], (n, 2))
    step = rng.normal(0, 4, (n, 2))
    return start, step


def test_self_calibration_recovers_the_homography_from_noisy_wrong_assignments_and_drops_on_a_moved_camera():
    rng = np.random.default_rng(5)
    cal = SelfCalibrator((640, 480), (512, 384), SelfCalOptions(min_pairs=24, every_s=0.0))
    start, step = _walkers(4, rng)
    events, fitted_at = [], None
    moved = np.array([[1.0, 0, 60.0], [0, 1.0, -30.0], [0, 0, 1.0]]) @ H  # the IR camera knocked aside
    for k in range(120):
        t = k * 0.1
        truth = H if k < 60 else moved
        feet = start + step * (k % 40)
        rgb = [_track(i, "rgb", tuple(f), [1, 0, 0]) for i, f in enumerate(feet)]
        ir_feet = Calibration(truth, (640, 480), (512, 384), 0, 1, 1).rgb_to_ir(feet) + rng.normal(0, 1.0, (4, 2))
        ir = [_track(i, "ir", tuple(f), [1, 0, 0], height=64) for i, f in enumerate(ir_feet)]
        order = np.arange(4) if rng.random() < 0.6 else rng.permutation(4)  # 40 % of rounds assign wrongly
        new = cal.observe([(rgb[i], ir[j], 0.8) for i, j in enumerate(order)], t)
        events += new
        if fitted_at is None and cal.calibration is not None:
            fitted_at = t
            grid = np.stack(np.meshgrid(np.linspace(80, 560, 7), np.linspace(240, 450, 5)), -1).reshape(-1, 2)
            err = np.linalg.norm(cal.calibration.rgb_to_ir(grid) - CAL.rgb_to_ir(grid), axis=1)
            assert np.median(err) < 3.0, np.median(err)
    statuses = [e["status"] for e in events]
    assert fitted_at is not None and fitted_at < 4.0 and statuses[0] == "fitted"
    assert "dropped" in statuses and statuses.index("dropped") > statuses.index("fitted")
    assert statuses[-1] in ("fitted", "refitted")  # and it learns the new view
    final = cal.calibration.rgb_to_ir(start)
    assert np.median(np.linalg.norm(final - Calibration(moved, (1, 1), (1, 1), 0, 1, 1).rgb_to_ir(start), axis=1)) < 4


def test_a_walker_off_the_fit_where_it_is_a_guess_is_not_a_moved_camera():
    """A fit from two walkers' paths is sure along them and a guess far from them. The people it paired, 20 px off
    where it is sure, say the camera moved; 20 px off where it is a guess, they say nothing (on SynthVI's separate
    rig, where no camera moves, 23 fits were dropped as moved before this)."""
    rng = np.random.default_rng(5)
    t = np.linspace(0, 1, 40)
    paths = np.r_[np.c_[60 + 180 * t, 280 + 150 * t], np.c_[80 + 140 * t, 450 - 120 * t]]
    fit = fit_calibration(paths, CAL.rgb_to_ir(paths) + rng.normal(0, 1.0, (80, 2)), (640, 480), (512, 384))
    sure, guess = (150.0, 330.0), (600.0, 150.0)
    assert fit.uncertainty_px(np.array([sure]))[0] < 2.0 < 10.0 < fit.uncertainty_px(np.array([guess]))[0]

    def dropped(rgb_foot, sigmas: float) -> bool:
        cal = SelfCalibrator((640, 480), (512, 384), SelfCalOptions(min_pairs=10**6, every_s=0.0, drift_sigmas=sigmas))
        cal.calibration, cal._explains = fit, {(1, 1)}
        ir_foot = tuple(fit.rgb_to_ir(np.array([rgb_foot]))[0] + (0.0, 20.0))
        events = []
        for k in range(20):
            rgb, ir = _track(1, "rgb", rgb_foot, [1, 0, 0]), _track(1, "ir", ir_foot, [1, 0, 0], height=40)
            events += cal.observe([(rgb, ir, 0.8)], 0.1 * k)
        return [e["status"] for e in events] == ["dropped"]

    assert dropped(sure, 3.0) and not dropped(guess, 3.0)
    assert dropped(guess, 0.0)  # judged without the fit's uncertainty, a guess looks like a moved camera


def test_self_calibration_that_cannot_fit_says_so_once_and_keeps_to_appearance_and_time():
    cal = SelfCalibrator((640, 480), (512, 384), SelfCalOptions(min_pairs=10, every_s=0.0))
    events = []
    for k in range(60):  # one walker only: no homography can be told from one path
        rgb_foot = (100 + 6 * k, 300 + 2 * k)
        rgb = _track(1, "rgb", rgb_foot, [1, 0])
        ir = _track(1, "ir", _ir_of(rgb_foot), [1, 0], height=64)
        events += [(k * 0.1, e) for e in cal.observe([(rgb, ir, 0.8)], k * 0.1)]
    assert cal.calibration is None
    assert len(events) == 1, events
    t, event = events[0]
    assert event["status"] == "unfitted" and event["cues"] == "appearance+time" and t >= 2.0
