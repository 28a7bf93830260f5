"""Cross-camera identity metrics on hand-made ground truth and predictions with known answers."""

from __future__ import annotations

from pathlib import Path

import pytest

from hicmd.runtime.idmetrics import hota_available, identity_metrics


def _mot(path: Path, rows: list[tuple[int, int, float, float]]) -> None:
    path.write_text("".join(f"{f},{i},{x},{y},20,50,1,-1,-1,-1\n" for f, i, x, y in rows))


def _clip(tmp_path: Path) -> Path:
    clip = tmp_path / "clip"
    clip.mkdir()
    _mot(clip / "gt_rgb.txt", [(f, 1, 10 + f, 30) for f in range(1, 5)])
    _mot(clip / "gt_ir.txt", [(f, 1, 40 + f, 20) for f in range(1, 5)])
    return clip


def test_one_person_whose_global_id_changes_halfway_in_ir(tmp_path):
    clip, run = _clip(tmp_path), tmp_path / "tracks"
    run.mkdir()
    _mot(run / "rgb_global.txt", [(f, 7, 10 + f, 30) for f in range(1, 5)])
    _mot(run / "ir_global.txt", [(f, 7 if f <= 2 else 9, 40 + f, 20) for f in range(1, 5)])
    m = identity_metrics(run, clip)
    # the best one-to-one identity mapping (person 1 <-> 7) covers 4 RGB + 2 IR of 8 boxes on each side
    assert m["idf1"] == pytest.approx(2 * 6 / (8 + 8))
    assert m["id_switches"] == 1


def test_the_same_id_in_both_cameras_is_perfect_and_a_wrong_pairing_is_not(tmp_path):
    clip, run = _clip(tmp_path), tmp_path / "tracks"
    run.mkdir()
    _mot(run / "rgb_global.txt", [(f, 3, 10 + f, 30) for f in range(1, 5)])
    _mot(run / "ir_global.txt", [(f, 3, 40 + f, 20) for f in range(1, 5)])
    perfect = identity_metrics(run, clip)
    assert perfect["idf1"] == pytest.approx(1.0)
    _mot(run / "ir_global.txt", [(f, 4, 40 + f, 20) for f in range(1, 5)])  # never matched across cameras
    apart = identity_metrics(run, clip)
    assert apart["idf1"] == pytest.approx(0.5)
    if hota_available():
        assert perfect["hota"] == pytest.approx(1.0) and apart["hota"] < 0.8
    else:
        assert perfect["hota"] is None and "trackeval" in perfect["note"]


def test_camera_metrics_scores_one_cameras_tracker_alone(tmp_path):
    """benchmarks/tracking.py's score: one camera, per-camera track ids. A person tracked as 5 then (after a
    fragment) as 6 over 4 frames: the best mapping covers 2 of 4 boxes on each side."""
    import numpy as np

    from hicmd.runtime.idmetrics import camera_metrics

    box = lambda f, i: np.array([[10 + f, 30, 30 + f, 80, 1, i]], np.float32)  # noqa: E731
    gt = {f: box(f, 1) for f in range(1, 5)}
    whole = camera_metrics(gt, {f: box(f, 5) for f in range(1, 5)})
    split = camera_metrics(gt, {f: box(f, 5 if f <= 2 else 6) for f in range(1, 5)})
    assert whole["idf1"] == pytest.approx(1.0) and whole["id_switches"] == 0
    assert split["idf1"] == pytest.approx(2 * 2 / (4 + 4)) and split["id_switches"] == 1
