"""Track-level consensus for self-calibration: the homography that explains the most people one to one."""

from __future__ import annotations

import numpy as np

from hicmd.runtime.consensus import consensus_homography, judge
from hicmd.runtime.geometry import Calibration

H = np.array([[0.9, 0.1, 15.0], [-0.05, 0.7, 20.0], [0.0, 4e-4, 1.0]])  # RGB -> IR ground homography
TRUTH = Calibration(H, (640, 480), (512, 384), 1.0, 50, 50)


def _walks(rng: np.random.Generator, starts, steps, n: int = 12) -> list[np.ndarray]:
    return [np.array(s) + np.arange(n)[:, None] * np.array(v) + rng.normal(0, 0.5, (n, 2)) for s, v in zip(starts,
                                                                                                        steps)]


def _pairs(rgb_paths, ir_paths, rng):
    """Every RGB track with every IR track, as self-calibration collects them (most are two different people)."""
    return {(r, i): (rgb_paths[r], ir_paths[i] + rng.normal(0, 1.0, ir_paths[i].shape))
            for r in range(len(rgb_paths)) for i in range(len(ir_paths))}


def test_consensus_finds_the_people_and_their_homography_among_all_pairs():
    rng = np.random.default_rng(3)
    rgb = _walks(rng, [(100, 300), (400, 250), (250, 420), (500, 400)], [(12, 3), (-10, 5), (8, -6), (-5, -9)])
    ir = [TRUTH.rgb_to_ir(p) for p in rgb]
    found = consensus_homography(_pairs(rgb, ir, rng), tol_px=4.0)
    assert found is not None and sorted(found.keys) == [(0, 0), (1, 1), (2, 2), (3, 3)]
    grid = np.stack(np.meshgrid(np.linspace(100, 540, 6), np.linspace(260, 440, 4)), -1).reshape(-1, 2)
    err = np.linalg.norm(Calibration(found.homography, (640, 480), (512, 384), 0, 1, 1).rgb_to_ir(grid)
                         - TRUTH.rgb_to_ir(grid), axis=1)
    assert np.median(err) < 3.0, np.median(err)


def test_a_person_is_credited_once_to_a_homography_that_maps_them_onto_two():
    # IR tracks 0 and 1 are one person seen twice over (the IR tracker restarted on them): a homography may explain
    # RGB track 0 with both, but it is one person, so only one of the two pairs counts
    rng = np.random.default_rng(4)
    rgb = _walks(rng, [(100, 300), (400, 250)], [(12, 3), (-10, 5)])
    ir = [TRUTH.rgb_to_ir(rgb[0]), TRUTH.rgb_to_ir(rgb[0]) + 0.5, TRUTH.rgb_to_ir(rgb[1])]
    verdict = judge(H, _pairs(rgb, ir, rng), tol_px=4.0)
    assert len(verdict.keys) == 2 and {k[0] for k in verdict.keys} == {0, 1}
    assert verdict.support <= 2 * 12


def test_no_consensus_from_a_single_track_pair():
    rng = np.random.default_rng(5)
    rgb = _walks(rng, [(100, 300)], [(12, 3)])
    assert consensus_homography(_pairs(rgb, [TRUTH.rgb_to_ir(rgb[0])], rng), tol_px=4.0) is None


def test_remembered_couples_give_the_same_explanations_and_are_not_fitted_again(monkeypatch):
    import cv2

    from hicmd.runtime import consensus

    rng = np.random.default_rng(6)
    rgb = _walks(rng, [(100, 300), (400, 250), (250, 420)], [(12, 3), (-10, 5), (8, -6)])
    pairs = _pairs(rgb, [TRUTH.rgb_to_ir(p) for p in rgb], rng)
    fits, find = [], cv2.findHomography
    monkeypatch.setattr(consensus.cv2, "findHomography", lambda *a, **k: fits.append(1) or find(*a, **k))
    plain = consensus.ranked_consensus(pairs, tol_px=4.0)
    calls, memo = len(fits), {}
    first = consensus.ranked_consensus(pairs, tol_px=4.0, memo=memo)
    again = consensus.ranked_consensus(pairs, tol_px=4.0, memo=memo)
    for found in (first, again):
        assert [c.keys for c in found] == [c.keys for c in plain]
        assert all(np.array_equal(a.homography, b.homography) for a, b in zip(found, plain))
    assert len(fits) == 3 * calls - (calls - 1)  # the second call with the memo fits only the point-level RANSAC
    pairs[(0, 0)] = (pairs[(0, 0)][0][:-1], pairs[(0, 0)][1][:-1])  # a track pair's points changed: refitted
    before = len(fits)
    consensus.ranked_consensus(pairs, tol_px=4.0, memo=memo)
    assert len(fits) - before > 1
