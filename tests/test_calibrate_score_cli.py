"""`hicmd calibrate` and `hicmd score` from the command line, bad inputs included (one line, exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hicmd.runtime.geometry import Calibration
from testkit.cli import hicmd, one_line

H = np.array([[0.9, 0.01, -12.0], [0.0, 0.9, -9.0], [0.0, 1e-5, 1.0]])
INSIDE_BOTH = ([20, 200], [360, 290])  # RGB points (640x480) that H maps inside the IR image (320x256)


def _points(path: Path, rgb: np.ndarray) -> Path:
    ir = Calibration(H, (640, 480), (320, 256), 0, 1, 1).rgb_to_ir(rgb)
    path.write_text("rgb_x,rgb_y,ir_x,ir_y\n" + "".join(f"{a:.2f},{b:.2f},{c:.2f},{d:.2f}\n"
                                                        for (a, b), (c, d) in zip(rgb, ir)))
    return path


def test_calibrate_from_point_pairs(tmp_path):
    rgb = np.random.default_rng(0).uniform(*INSIDE_BOTH, (12, 2))
    proc = hicmd("calibrate", "--points", str(_points(tmp_path / "p.csv", rgb)), "--rgb-size", "640x480",
                 "--ir-size", "320x256", "--out", str(tmp_path / "cal.json"))
    assert proc.returncode == 0, proc.stderr
    cal = Calibration.load(tmp_path / "cal.json")
    grid = np.stack(np.meshgrid(np.linspace(0, 640, 5), np.linspace(200, 480, 4)), -1).reshape(-1, 2)
    truth = Calibration(H, (640, 480), (320, 256), 0, 1, 1).rgb_to_ir(grid)
    assert np.abs(cal.rgb_to_ir(grid) - truth).max() < 0.05 and cal.ir_size == (320, 256)


def test_calibrate_bad_inputs(tmp_path):
    rgb = np.random.default_rng(1).uniform(*INSIDE_BOTH, (12, 2))
    sizes = ["--rgb-size", "640x480", "--ir-size", "320x256"]
    one_line(hicmd("calibrate", "--points", str(_points(tmp_path / "three.csv", rgb[:3])), *sizes), "at least 4")
    line = np.c_[np.linspace(20, 350, 10), np.linspace(210, 280, 10)]
    one_line(hicmd("calibrate", "--points", str(_points(tmp_path / "line.csv", line)), *sizes), "one line")
    (tmp_path / "bad.csv").write_text("1,2,3,4\n5,6,x,8\n")
    one_line(hicmd("calibrate", "--points", str(tmp_path / "bad.csv"), *sizes), "line 2")
    one_line(hicmd("calibrate", "--points", str(_points(tmp_path / "ok.csv", rgb))), "--rgb-size")
    one_line(hicmd("calibrate"), "either --points")


def test_stream_refuses_a_calibration_it_cannot_use(tmp_path):
    from testkit.stream import make_clip, tiny_export

    clip = make_clip(tmp_path / "clip", seconds=2.0)
    model = tiny_export(tmp_path / "model")
    run = ["stream", "--rgb", str(clip / "rgb.mp4"), "--ir", str(clip / "ir.mp4"), "--model", str(model),
           "--detections-rgb", str(clip / "det_rgb.txt"), "--detections-ir", str(clip / "det_ir.txt")]
    Calibration(H, (1920, 1080), (640, 512), 1.0, 10, 10).save(tmp_path / "other.json")
    one_line(hicmd(*run, "--calibration", str(tmp_path / "other.json")), "recalibrate")
    (tmp_path / "singular.json").write_text(json.dumps({"format": "hicmd-calibration/1", "rgb_size": [320, 240],
                                                        "ir_size": [320, 240], "homography": [[1, 2, 0], [2, 4, 0],
                                                                                              [0, 0, 1]]}))
    one_line(hicmd(*run, "--calibration", str(tmp_path / "singular.json")), "singular")
    (tmp_path / "junk.json").write_text("{not json")
    one_line(hicmd(*run, "--calibration", str(tmp_path / "junk.json")), "cannot read calibration")


@pytest.mark.parametrize("what", ["run", "gt"])
def test_score_bad_folders(tmp_path, what):
    (tmp_path / "run" / "tracks").mkdir(parents=True)
    (tmp_path / "run" / "events.jsonl").write_text("")
    (tmp_path / "clip").mkdir()
    run = tmp_path / ("missing" if what == "run" else "run")
    one_line(hicmd("score", "--run", str(run), "--gt", str(tmp_path / "clip")),
             "events.jsonl" if what == "run" else "gt_rgb.txt")


def test_score_lists_each_wrong_match_with_its_cue_and_the_fit_it_came_after(tmp_path):
    # two people walk through both views for 3 s (10 fps); the run matched RGB track 1 right and RGB track 2 with
    # person 1's IR track 0.4 s after a fit
    clip, run = tmp_path / "clip", tmp_path / "run"
    (run / "tracks").mkdir(parents=True)
    clip.mkdir()
    rows = {cam: [f"{f},{p},{40 + 100 * p + 2 * f},60,30,80,1,-1,-1,-1\n" for f in range(1, 31) for p in (1, 2)]
            for cam in ("rgb", "ir")}
    for cam in ("rgb", "ir"):
        (clip / f"gt_{cam}.txt").write_text("".join(rows[cam]))
        for name in (f"{cam}.txt", f"{cam}_global.txt"):
            (run / "tracks" / name).write_text("".join(rows[cam]))
    events = [{"event": "track_new", "t": 0.1, "camera": cam, "track": p} for cam in ("rgb", "ir") for p in (1, 2)]
    events += [{"event": "calibration", "t": 0.6, "status": "fitted", "source": "self"},
               {"event": "match", "t": 0.8, "rgb_track": 1, "ir_track": 1, "rgb_frame": 8, "ir_frame": 8,
                "cue": "geometry"},
               {"event": "match", "t": 1.0, "rgb_track": 2, "ir_track": 1, "rgb_frame": 10, "ir_frame": 10,
                "cue": "geometry"}]
    (run / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    proc = hicmd("score", "--run", str(run), "--gt", str(clip), "--out", str(tmp_path / "score.json"))
    assert proc.returncode == 0, proc.stderr
    card = json.loads((tmp_path / "score.json").read_text())
    assert (card["match_correct"], card["match_matches"]) == (1, 2)
    assert card["match_wrong"] == [{"t": 1.0, "cue": "geometry", "rgb_track": 2, "ir_track": 1, "rgb_person": 2,
                                    "ir_person": 1, "after_fit_s": 0.4}]
    assert "wrong matches" in proc.stdout and "2 (2)" in proc.stdout and "1 (1)" in proc.stdout
    assert card["match_people_matched"] == [1]
    assert card["people_recall"] is None  # no clip.json, no videos: the frame rates, so who was seen together, unknown


def test_recall_per_person_counts_people_both_cameras_saw_together_long_enough(tmp_path):
    from hicmd.runtime.scorecard import people_recall

    # RGB at 10 fps, IR at 5 fps (SynthVI's odd clips). People 1 and 2: RGB frames 1-30 (0-2.9 s), IR frames 1-15
    # (0-2.8 s): 2.8 s together, which only the IR camera's own frame rate gives (at 10 fps its 15 frames would be
    # 1.4 s). Person 3: RGB only. Person 4: RGB 0-1.9 s, IR 1.0-2.8 s: 0.9 s together.
    rgb = [(f, p) for f in range(1, 31) for p in (1, 2, 3)] + [(f, 4) for f in range(1, 21)]
    ir = [(f, p) for f in range(1, 16) for p in (1, 2)] + [(f, 4) for f in range(6, 16)]
    for cam, rows in (("rgb", rgb), ("ir", ir)):
        (tmp_path / f"gt_{cam}.txt").write_text("".join(f"{f},{p},{10 * p},60,30,80,1,-1,-1,-1\n" for f, p in rows))
    (tmp_path / "clip.json").write_text(json.dumps({"fps": {"rgb": 10, "ir": 5}}))
    assert people_recall(tmp_path, {1, 3}) == {"people_both": 2, "people_found": 1, "people_recall": 0.5}
    assert people_recall(tmp_path, {1, 2, 4})["people_recall"] == 1.0  # person 4 was never someone to find
