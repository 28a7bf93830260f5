"""Tied distances rank as the official SYSU-MM01 MATLAB code ranks them: a gallery built camera by camera and a
stable sort, so tied people are ranked in camera order (cam1 before cam4), whatever their ids."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hicmd.data.records import Record
from hicmd.evaluation.protocols import Permutations, Trial, permuted_draw, score

ONE = np.ones((1, 1), int)  # a permutation row for a (camera, pid) with one image
EMPTY = np.zeros((0, 0), int)


def _gallery() -> list[Record]:
    # pid 1 only in cam4, pid 2 only in cam1: pid order and camera order disagree
    candidates = [Record(Path("cam4/0001/0001.jpg"), 1, 4, "rgb"), Record(Path("cam1/0002/0001.jpg"), 2, 1, "rgb")]
    cells = tuple(tuple({(1, 2): ONE, (4, 1): ONE}.get((cam, pid), EMPTY) for pid in (1, 2)) for cam in range(1, 7))
    return permuted_draw(candidates, (1, 2, 4, 5), 1, 1, Permutations(cells))


def _trial(query_pids: list[int]) -> Trial:
    query = [Record(Path(f"cam6/{p:04d}/{k:04d}.jpg"), p, 6, "ir") for k, p in enumerate(query_pids)]
    return Trial("sysu", "all-search 1-shot", 1, query, _gallery(), stable=True)


def test_the_official_gallery_is_built_camera_by_camera():
    assert [(r.camera, r.pid) for r in _gallery()] == [(1, 2), (4, 1)]


@pytest.mark.parametrize("query_pids, r1, m_ap", [
    ([1, 2], 0.5, 0.75),  # two cam6 queries tied between the cam4 and the cam1 person (the official code's numbers)
    ([2, 2], 1.0, 1.0),  # both of the cam1 person: ranked first on the tie
    ([1, 1], 0.0, 0.5),  # both of the cam4 person: ranked second, whatever its smaller id
])
def test_tied_distances_rank_in_gallery_order(query_pids, r1, m_ap):
    features = np.ones((len(query_pids), 4)) / 2.0  # every query equally far from every gallery item
    result = score(_trial(query_pids), features, np.ones((2, 4)) / 2.0)
    assert result.cmc[0] == pytest.approx(r1) and result.mAP == pytest.approx(m_ap)
