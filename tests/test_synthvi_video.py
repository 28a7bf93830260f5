"""SynthVI clips: readable videos, consistent MOTChallenge gt/det, clip.json and 16-bit thermal frames."""

from __future__ import annotations

import json

import cv2
import numpy as np

from hicmd.data.synthvi_video import clip_folders, write_clip, write_videos


def _mot(path):
    rows = np.loadtxt(path, delimiter=",", ndmin=2)
    assert rows.shape[1] == 10 and (rows[:, 7:] == -1).all()
    return rows


def _frames(path):
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), path
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    return frames, cap.get(cv2.CAP_PROP_FPS)


def test_clip_files_are_consistent(tmp_path):
    pids = [4, 9, 17]
    meta = write_clip(tmp_path / "c", pids, seed=1, index=0, frames=40, size=(96, 128), ir_fps=5, y16=True)
    folder = tmp_path / "c"
    assert json.loads((folder / "clip.json").read_text()) == meta
    assert meta["fps"] == {"rgb": 10, "ir": 5} and meta["frames"] == {"rgb": 40, "ir": 20}
    ids = {}
    for modality in ("rgb", "ir"):
        frames, fps = _frames(folder / f"{modality}.mp4")
        width, height = meta["sizes"][modality]  # the bi-spectrum rig's thermal sensor has fewer pixels
        assert (width, height) == ((128, 96) if modality == "rgb" else (104, 76))
        assert len(frames) == meta["frames"][modality] and frames[0].shape == (height, width, 3)
        assert fps == meta["fps"][modality]
        gt, det = _mot(folder / f"gt_{modality}.txt"), _mot(folder / f"det_{modality}.txt")
        n = meta["frames"][modality]
        for rows in (gt, det):
            assert rows[:, 0].min() >= 1 and rows[:, 0].max() <= n
            assert (rows[:, 2] >= 0).all() and (rows[:, 3] >= 0).all()
            assert (rows[:, 2] + rows[:, 4] <= width + 0.5).all() and (rows[:, 3] + rows[:, 5] <= height + 0.5).all()
        assert set(gt[:, 1].astype(int)) <= set(pids) and (det[:, 1] == -1).all()
        assert len({(f, p) for f, p in gt[:, :2].astype(int)}) == len(gt)  # one box per person and frame
        assert 0.7 * len(gt) < len(det) < 1.3 * len(gt)
        ids[modality] = set(gt[:, 1].astype(int))
        assert len(gt) > n  # several people across the clip, often more than one at a time
    assert ids["rgb"] & ids["ir"]  # the same identities, under the same ids, in both cameras
    y16 = sorted((folder / "ir_y16").glob("*.png"))
    assert len(y16) == 20
    gt_ir = _mot(folder / "gt_ir.txt")
    frame_no = int(np.bincount(gt_ir[:, 0].astype(int)).argmax())  # the busiest IR frame
    kelvin = cv2.imread(str(y16[frame_no - 1]), cv2.IMREAD_UNCHANGED)
    assert kelvin.dtype == np.uint16 and kelvin.shape == (76, 104)  # the thermal sensor's own size
    body = np.zeros(kelvin.shape, bool)
    for row in gt_ir[gt_ir[:, 0] == frame_no]:
        x, y, w, h = row[2:6].astype(int)
        body[y:y + h, x:x + w] = True
    assert 30000 < kelvin[body].max() < 31000  # exposed skin at ~30-35 degC
    assert np.median(kelvin[~body]) < np.percentile(kelvin[body], 90) - 300  # background cooler by > 3 K


def test_write_videos_picks_test_ids(tmp_path):
    written = write_videos(tmp_path / "videos", [2, 5, 8, 11, 14], seed=0, clips=2, frames=20, size=(64, 96))
    assert [p.name for p in written] == ["clip01", "clip02"]
    for folder in written:
        meta = json.loads((folder / "clip.json").read_text())
        assert 3 <= len(meta["identities"]) <= 4 and set(meta["identities"]) <= {2, 5, 8, 11, 14}
    assert json.loads((written[1] / "clip.json").read_text())["fps"]["ir"] == 5


def test_clip_folders_are_found_given_or_under_a_folder(tmp_path):
    for name in ("set/videos/clip02", "set/videos/clip01", "other/clip01"):
        (tmp_path / name).mkdir(parents=True)
        (tmp_path / name / "clip.json").write_text("{}")
    (tmp_path / "set/videos/notes").mkdir()
    assert clip_folders([tmp_path / "set", tmp_path / "other/clip01"]) == [
        tmp_path / "set/videos/clip01", tmp_path / "set/videos/clip02", tmp_path / "other/clip01"]
    assert clip_folders([str(tmp_path / "set/videos/notes")]) == []
