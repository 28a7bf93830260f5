"""benchmarks/footage_training.py and hicmd/data/footage.py: a RegDB training folder of stills plus footage crops of
the same people, that the training reader takes."""

import importlib.util
from pathlib import Path

import cv2
import pytest

from hicmd.data import regdb_split
from hicmd.data.synthvi_write import REGDB_NAMES, write_regdb
from hicmd.runtime.detect import read_mot

BENCH = Path(__file__).parents[1] / "benchmarks" / "footage_training.py"
spec = importlib.util.spec_from_file_location("bench_footage", BENCH)
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("footage")
    write_regdb(root / "data", ids=8, images_per_modality=2, seed=5)
    counts = bench.build(root / "data", root / "train", clips=1, frames=20, every=2, min_height=12)
    return root, counts


def _lines(path: Path) -> list[str]:
    return [line for line in path.read_text().split("\n") if line.strip()]


def test_the_folder_holds_the_stills_and_crops_of_the_training_people_under_the_stills_labels(built):
    root, counts = built
    labels = bench.stills_labels(root / "data")
    for cam, (_, _, name) in REGDB_NAMES.items():
        train = _lines(root / "train" / "idx" / f"train_{name}_1.txt")
        stills = _lines(root / "data" / "idx" / f"train_{name}_1.txt")
        assert train[:len(stills)] == [f"stills/{line}" for line in stills]
        footage = train[len(stills):]
        assert len(footage) == counts[cam] > 0
        for line in footage:
            path, label = line.rsplit(" ", 1)
            assert path.startswith("footage/") and labels[int(path.split("/")[2])] == int(label), line
        test = _lines(root / "data" / "idx" / f"test_{name}_1.txt")
        assert _lines(root / "train" / "idx" / f"test_{name}_1.txt") == [f"stills/{line}" for line in test]
    records = regdb_split(root / "train", "train")  # every listed image is there, as the training reader wants
    assert len(records) == sum(counts.values()) + sum(
        len(_lines(root / "data" / "idx" / f"train_{name}_1.txt")) for _, _, name in REGDB_NAMES.values())
    assert {r.pid for r in records} == set(labels)  # the footage people are the stills' training people
    assert not (root / "train.partial").exists()


def test_crops_are_cut_at_the_gt_box_every_nth_frame(built):
    root, _ = built
    clip = root / "train" / "clips" / "separate" / "clip01"
    gt = read_mot(clip / "gt_rgb.txt")
    crops = sorted((root / "train" / "footage" / "Visible").rglob("separate_clip01_*.png"))
    frames = {int(p.stem.rsplit("_", 1)[1]) for p in crops}
    assert frames and all(f % 2 == 0 for f in frames)
    exact = [p for p in crops if int(p.stem.rsplit("_", 1)[1]) // 2 % 2 == 0]  # the unjittered half
    assert exact
    for path in exact:
        frame, pid = int(path.stem.rsplit("_", 1)[1]), int(path.parent.name)
        x1, y1, x2, y2 = next(row[:4] for row in gt[frame] if int(row[5]) == pid)
        assert cv2.imread(str(path)).shape[:2] == (int(y2) - int(y1), int(x2) - int(x1)), path


def test_an_existing_folder_is_refused_with_one_line(built, monkeypatch):
    root, _ = built
    monkeypatch.setattr("sys.argv", ["footage_training.py", str(root / "data"), "--out", str(root / "train")])
    with pytest.raises(SystemExit) as exc:
        bench.main()
    assert "exists" in str(exc.value) and "\n" not in str(exc.value)
    assert len(_lines(root / "train" / "idx" / "train_visible_1.txt")) > 0  # untouched
