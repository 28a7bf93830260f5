"""`hicmd synth --footage` (hicmd/data/footage.py): footage crops of the training people join the training list
under the stills' labels, cut at the true boxes, and the RegDB reader takes the folder."""

import json
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from hicmd.data import regdb_split
from hicmd.data.footage import FOOTAGE_SUMMARY, add_footage, write_crops
from hicmd.data.synthvi_video import write_videos
from hicmd.data.synthvi_write import REGDB_NAMES, write_regdb
from hicmd.runtime.detect import read_mot


def _lines(path: Path) -> list[str]:
    return [line for line in path.read_text().split("\n") if line.strip()]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, dict[str, list[str]], dict[str, int]]:
    root = tmp_path_factory.mktemp("footage") / "data"
    write_regdb(root, ids=8, images_per_modality=2, seed=5)
    stills = {name: _lines(root / "idx" / f"train_{name}_1.txt") for _, _, name in REGDB_NAMES.values()}
    add_footage(root, clips=1, frames=20, every=2)
    counts = add_footage(root, clips=1, frames=20, every=2)  # twice: the lists hold the crops once
    return root, stills, counts


def test_the_training_lists_hold_the_stills_then_the_crops_under_the_stills_labels(data) -> None:
    root, stills, counts = data
    meta = json.loads((root / "synthvi.json").read_text())
    labels = {pid: label for label, pid in enumerate(meta["trials"]["1"]["train"])}
    for cam, (_, _, name) in REGDB_NAMES.items():
        train = _lines(root / "idx" / f"train_{name}_1.txt")
        assert train[:len(stills[name])] == stills[name]
        footage = train[len(stills[name]):]
        assert len(footage) == counts[cam] > 0
        for line in footage:
            path, label = line.rsplit(" ", 1)
            assert path.startswith("footage/") and labels[int(path.split("/")[2])] == int(label), line
        assert not any(line.startswith("footage/") for line in _lines(root / "idx" / f"test_{name}_1.txt"))
    records = regdb_split(root, "train")  # every listed image is there, as the training reader wants
    assert len(records) == sum(counts.values()) + sum(map(len, stills.values()))
    assert {r.pid for r in records} == set(labels)  # the footage people are the stills' training people
    assert json.loads((root / FOOTAGE_SUMMARY).read_text())["crops"] == counts
    assert not (root / "footage.partial").exists() and not (root / "footage" / "clips").exists()


def test_crops_are_cut_at_the_gt_box_every_nth_frame(tmp_path: Path) -> None:
    clip = write_videos(tmp_path / "clips", [1, 2, 3], seed=5, clips=1, frames=20, rig="separate")[0]
    lines = write_crops([clip], tmp_path / "crops", {1: 0, 2: 1, 3: 2}, every=2, min_height=12)
    gt = read_mot(clip / "gt_rgb.txt")
    crops = [tmp_path / "crops" / line.rsplit(" ", 1)[0] for line in lines["rgb"]]
    frames = {int(p.stem.rsplit("_", 1)[1]) for p in crops}
    assert frames and all(f % 2 == 0 for f in frames)
    exact = [p for p in crops if int(p.stem.rsplit("_", 1)[1]) // 2 % 2 == 0]  # the unjittered half
    assert exact
    for path in exact:
        frame, pid = int(path.stem.rsplit("_", 1)[1]), int(path.parent.name)
        x1, y1, x2, y2 = next(row[:4] for row in gt[frame] if int(row[5]) == pid)
        assert cv2.imread(str(path)).shape[:2] == (int(y2) - int(y1), int(x2) - int(x1)), path


@pytest.mark.parametrize("args", [["--footage", "-1"], ["--footage", "1", "--trials", "2"],
                                  ["--footage", "1", "--ids", "4"]])
def test_bad_footage_options_are_one_line(tmp_path: Path, args: list[str]) -> None:
    result = subprocess.run([sys.executable, "-m", "hicmd", "synth", "--out", str(tmp_path / "d"), *args],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "--footage needs" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "d").exists()
