"""Metrics on hand-built rankings whose numbers are derived by hand in the comments, plus a loop reference."""

from __future__ import annotations

import time
from fractions import Fraction as F

import numpy as np
import pytest

from hicmd.evaluation.metrics import eval_llcm, eval_regdb, eval_sysu, evaluate_ranking, mean_metrics


def ranking_distmat(rankings: list[list[int]]) -> np.ndarray:
    """Distance matrix whose row q ranks the gallery exactly as rankings[q] (best first)."""
    d = np.zeros((len(rankings), len(rankings[0])))
    for q, order in enumerate(rankings):
        d[q, order] = np.arange(len(order))
    return d


def close(value: float, expected: F) -> bool:
    return abs(value - float(expected)) < 1e-12


# Gallery: six items, two per identity.
G_PIDS = np.array([1, 1, 2, 2, 3, 3])


def test_regdb_hand_computed():
    rankings = [
        [2, 0, 4, 1, 3, 5],  # q0 (pid 1): pids 2 1 3 1 2 3 -> hits at ranks 2, 4
        [2, 3, 0, 1, 4, 5],  # q1 (pid 2): pids 2 2 1 1 3 3 -> hits at ranks 1, 2
        [0, 1, 2, 3, 4, 5],  # q2 (pid 3): pids 1 1 2 2 3 3 -> hits at ranks 5, 6
    ]
    m = eval_regdb(ranking_distmat(rankings), np.array([1, 2, 3]), G_PIDS)
    # AP: q0 (1/2 + 2/4)/2 = 1/2; q1 (1/1 + 2/2)/2 = 1; q2 (1/5 + 2/6)/2 = 4/15 -> mAP = 53/90
    assert close(m.mAP, (F(1, 2) + 1 + F(4, 15)) / 3) and close(m.mAP, F(53, 90))
    # INP = |G| / rank of the last hit: q0 2/4, q1 2/2, q2 2/6 -> mINP = (1/2 + 1 + 1/3)/3 = 11/18
    assert close(m.mINP, F(11, 18))
    # first hits at ranks 2, 1, 5 -> R1 = 1/3, R2..R4 = 2/3, R5 = 1
    assert close(m.r1, F(1, 3))
    assert np.allclose(m.cmc[:5], [1 / 3, 2 / 3, 2 / 3, 2 / 3, 1])
    assert m.r5 == m.r10 == m.r20 == 1.0
    assert (m.num_valid, m.num_query) == (3, 3)


def test_unique_id_cmc_differs_from_raw_cmc():
    rankings = [[2, 0, 4, 1, 3, 5], [2, 3, 0, 1, 4, 5], [0, 1, 2, 3, 4, 5]]
    d, q = ranking_distmat(rankings), np.array([1, 2, 3])
    raw = evaluate_ranking(d, q, G_PIDS, unique_ids=False)
    dedup = evaluate_ranking(d, q, G_PIDS, unique_ids=True)
    # q2 ranks pids 1 1 2 2 3 3: raw first hit at rank 5, deduplicated list 1 2 3 -> rank 3.
    # q0: 2 1 ... -> rank 2 either way; q1: rank 1 either way.
    assert np.allclose(raw.cmc[:5], [1 / 3, 2 / 3, 2 / 3, 2 / 3, 1])
    assert np.allclose(dedup.cmc[:5], [1 / 3, 2 / 3, 1, 1, 1])
    # AP and INP always use the raw list
    assert raw.mAP == dedup.mAP and raw.mINP == dedup.mINP


# SYSU: gallery cameras; cam2 items are skipped by cam3 queries only, whatever their identity.
S_CAMS = np.array([2, 1, 2, 4, 5, 1])


def test_sysu_camera_rule_and_invalid_query():
    rankings = [
        [2, 0, 1, 3, 4, 5],  # q0 pid 1 cam3: g2, g0 are cam2 -> removed; g1 (pid 1) is rank 1: AP 1, INP 1
        [0, 1, 4, 5, 3, 2],  # q1 pid 2 cam6: nothing removed; pids 1 1 3 3 2 2 -> raw hits 5, 6
        [0, 1, 2, 3, 4, 5],  # q2 pid 4 cam3: no pid 4 in the gallery -> invalid, left out of all means
        [2, 4, 5, 0, 3, 1],  # q3 pid 2 cam3: g2, g0 removed; kept pids 3 3 2 1 -> hit at rank 3 only
    ]
    q_pids, q_cams = np.array([1, 2, 4, 2]), np.array([3, 6, 3, 3])
    m = eval_sysu(ranking_distmat(rankings), q_pids, G_PIDS, q_cams, S_CAMS)
    assert (m.num_valid, m.num_query) == (3, 4)
    # AP: q0 1; q1 (1/5 + 2/6)/2 = 4/15; q3 1/3 (its other true match g2 was removed, so |G| = 1)
    assert close(m.mAP, (1 + F(4, 15) + F(1, 3)) / 3) and close(m.mAP, F(8, 15))
    # INP: q0 1/1; q1 2/6; q3 1/3 -> 5/9
    assert close(m.mINP, F(5, 9))
    # deduplicated CMC: q0 rank 1; q1 1 3 2 -> rank 3; q3 3 2 1 -> rank 2
    assert np.allclose(m.cmc[:4], [1 / 3, 2 / 3, 1, 1])


def test_sysu_rule_removes_a_higher_ranked_cam2_item():
    # One cam3 query of pid 1 whose only higher-ranked item is g2 (pid 2, cam2), then g1 (pid 1, cam1).
    d = ranking_distmat([[2, 1, 0, 3, 4, 5]])
    as_cam3 = eval_sysu(d, np.array([1]), G_PIDS, np.array([3]), S_CAMS)
    as_cam6 = eval_sysu(d, np.array([1]), G_PIDS, np.array([6]), S_CAMS)
    # cam3: g2 and g0 (both cam2) removed -> g1 first: R1 = 1, AP = 1
    assert as_cam3.r1 == 1.0 and as_cam3.mAP == 1.0
    # cam6: pids 2 1 1 ... -> first hit rank 2; AP (1/2 + 2/3)/2 = 7/12; INP 2/3
    assert as_cam6.r1 == 0.0 and close(as_cam6.mAP, F(7, 12)) and close(as_cam6.mINP, F(2, 3))


def test_minp_penalises_the_hardest_match():
    # 3 true matches at ranks 1, 2, 10 in a gallery of 10
    g = np.array([1, 1, 2, 3, 4, 5, 6, 7, 8, 1])
    m = eval_regdb(np.arange(10.0)[None, :], np.array([1]), g)
    assert close(m.mINP, F(3, 10))  # |G| / R_hard = 3/10
    assert close(m.mAP, (1 + 1 + F(3, 10)) / 3)  # (1/1 + 2/2 + 3/10)/3 = 23/30
    assert m.r1 == 1.0


def test_llcm_removes_same_pid_same_camera():
    g_pids, g_cams = np.array([1, 2, 1]), np.array([1, 1, 2])
    d = ranking_distmat([[0, 1, 2]])  # g0 (pid 1, cam 1) is the query's own camera -> removed
    m = eval_llcm(d, np.array([1]), g_pids, np.array([1]), g_cams)
    # kept: g1 (pid 2, same cam but other pid: kept) rank 1, g2 (pid 1, cam 2) rank 2 -> AP 1/2, R1 0
    assert m.r1 == 0.0 and close(m.mAP, F(1, 2)) and m.cmc[1] == 1.0


def test_no_valid_query_raises():
    with pytest.raises(ValueError, match="no query"):
        eval_regdb(np.zeros((2, 3)), np.array([7, 8]), np.array([1, 2, 3]))


def test_mean_metrics_averages_trials():
    a = eval_regdb(ranking_distmat([[0, 1]]), np.array([1]), np.array([1, 2]))  # R1 1, AP 1
    b = eval_regdb(ranking_distmat([[0, 1]]), np.array([2]), np.array([1, 2]))  # R1 0, AP 1/2
    m = mean_metrics([a, b])
    assert m.r1 == 0.5 and m.mAP == 0.75


def reference_eval(distmat, q_pids, g_pids, q_cams, g_cams, sysu_rule, unique_ids, max_rank=20):
    """Per-query loop written straight from docs/reference/evaluation.md §7 (the AGW eval_sysu structure)."""
    cmcs, aps, inps = [], [], []
    for i in range(len(q_pids)):
        order = np.argsort(distmat[i])
        keep = ~((q_cams[i] == 3) & (g_cams[order] == 2)) if sysu_rule else np.ones(len(order), bool)
        labels = g_pids[order][keep]
        raw = labels == q_pids[i]
        if not raw.any():
            continue
        if unique_ids:
            _, first = np.unique(labels, return_index=True)
            labels = labels[np.sort(first)]
        hit = np.cumsum(labels == q_pids[i]).clip(max=1)
        cmcs.append(np.pad(hit, (0, max(0, max_rank - len(hit))), mode="edge")[:max_rank])
        pos = np.flatnonzero(raw) + 1
        aps.append(np.mean(np.arange(1, len(pos) + 1) / pos))
        inps.append(len(pos) / pos[-1])
    return np.mean(cmcs, axis=0), np.mean(aps), np.mean(inps)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vectorised_matches_loop_reference(seed):
    rng = np.random.default_rng(seed)
    q_pids, g_pids = rng.integers(0, 12, 80), rng.integers(0, 12, 40)
    q_cams, g_cams = rng.choice([3, 6], 80), rng.choice([1, 2, 4, 5], 40)
    d = rng.random((80, 40))
    for fn, rule, unique in ((eval_sysu, True, True), (eval_regdb, False, False)):
        args = (d, q_pids, g_pids, q_cams, g_cams) if fn is eval_sysu else (d, q_pids, g_pids)
        m = fn(*args)
        cmc, mAP, mINP = reference_eval(d, q_pids, g_pids, q_cams, g_cams, rule, unique)
        assert np.allclose(m.cmc, cmc) and np.isclose(m.mAP, mAP) and np.isclose(m.mINP, mINP)


def test_sysu_trial_size_is_fast():
    """A real-size SYSU trial: 3,803 IR queries x 301 gallery images."""
    rng = np.random.default_rng(0)
    feats_q, feats_g = rng.standard_normal((3803, 64)), rng.standard_normal((301, 64))
    q_pids, g_pids = rng.integers(0, 96, 3803), np.repeat(np.arange(96), 4)[:301]
    q_cams, g_cams = rng.choice([3, 6], 3803), rng.choice([1, 2, 4, 5], 301)
    d = -feats_q @ feats_g.T
    eval_sysu(d, q_pids, g_pids, q_cams, g_cams)  # warm-up
    start = time.perf_counter()
    m = eval_sysu(d, q_pids, g_pids, q_cams, g_cams)
    seconds = time.perf_counter() - start
    print(f"\neval_sysu 3803 x 301: {seconds * 1000:.1f} ms ({m.num_valid} valid queries)")
    assert seconds < 1.0
