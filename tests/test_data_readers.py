"""Dataset readers on small fake trees in the RegDB, SYSU-MM01 and LLCM release layouts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from hicmd.data import DataError, Record, load_split, load_train, parse_dataset_spec
from hicmd.data.io import read_image, to_tensor_batch


def _img(path: Path, value: int = 100, gray: bool = False) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.full((20, 10) if gray else (20, 10, 3), value, np.uint8)
    cv2.imwrite(str(path), img)
    return str(path)


# --------------------------------------------------------------------------- RegDB


def _regdb(root: Path) -> Path:
    train, test = [3, 7], [5, 9]
    for stage, pids in (("train", train), ("test", test)):
        for folder, letter, name in (("Visible", "v", "visible"), ("Thermal", "t", "thermal")):
            lines = []
            for label, pid in enumerate(pids):
                for i in range(2):
                    rel = f"{folder}/{pid}/male_front_{letter}_{i:05d}_{pid}.bmp"
                    _img(root / rel, gray=folder == "Thermal")
                    lines.append(f"{rel} {label}")
            (root / "idx").mkdir(exist_ok=True)
            (root / "idx" / f"{stage}_{name}_1.txt").write_text("\n".join(lines) + "\n")
    return root


def test_regdb_splits(tmp_path):
    root = _regdb(tmp_path / "RegDB")
    train = load_split("regdb", root, "train", trial=1)
    assert len(train) == 8 and {r.pid for r in train} == {0, 1}
    assert {(r.modality, r.camera) for r in train} == {("rgb", 1), ("ir", 2)}
    records, original = load_train("regdb", root, 1)
    assert original == [3, 7] and records == train
    query, gallery = load_split("regdb", root, "query"), load_split("regdb", root, "gallery")
    assert {r.pid for r in query} == {r.pid for r in gallery} == {5, 9}
    assert all(r.modality == "rgb" for r in query) and all(r.modality == "ir" for r in gallery)
    assert all(isinstance(r, Record) and r.path.is_file() for r in query + gallery)


def test_regdb_errors_name_the_path(tmp_path):
    with pytest.raises(DataError, match="nowhere"):
        load_split("regdb", tmp_path / "nowhere", "train")
    root = _regdb(tmp_path / "RegDB")
    with pytest.raises(DataError, match="train_visible_2.txt"):
        load_split("regdb", root, "train", trial=2)
    bad = root / "idx" / "test_visible_1.txt"
    bad.write_text(bad.read_text() + "Visible/5/oops.bmp\n")
    with pytest.raises(DataError, match=r"test_visible_1.txt line 5"):
        load_split("regdb", root, "query")
    bad.write_text("Visible/5/missing.bmp 0\n")
    with pytest.raises(DataError, match=r"line 1: image .*missing.bmp does not exist"):
        load_split("regdb", root, "query")


# --------------------------------------------------------------------------- SYSU-MM01


def _sysu(root: Path) -> Path:
    for cam in range(1, 7):
        (root / f"cam{cam}").mkdir(parents=True)
    for pid in (1, 2, 6, 10):
        for cam in (1, 3, 4, 6) if pid != 10 else (2, 3):
            for i in range(1, 3):
                _img(root / f"cam{cam}" / f"{pid:04d}" / f"{i:04d}.jpg")
    (root / "exp").mkdir()
    (root / "exp" / "train_id.txt").write_text("1,2\n")
    (root / "exp" / "val_id.txt").write_text("3\n")
    (root / "exp" / "test_id.txt").write_text("6,10\n")
    return root


def test_sysu_splits(tmp_path):
    root = _sysu(tmp_path / "SYSU")
    train = load_split("sysu", root, "train")
    assert {r.pid for r in train} == {0, 1} and len(train) == 16
    assert {r.camera for r in train if r.modality == "ir"} == {3, 6}
    query = load_split("sysu", root, "query")
    assert {(r.pid, r.camera) for r in query} == {(6, 3), (6, 6), (10, 3)} and all(r.modality == "ir" for r in query)
    gallery = load_split("sysu", root, "gallery")
    assert {(r.pid, r.camera) for r in gallery} == {(6, 1), (6, 4), (10, 2)}
    assert [r.pid for r in gallery] == sorted(r.pid for r in gallery)  # pid, camera, file order


def test_sysu_errors(tmp_path):
    root = _sysu(tmp_path / "SYSU")
    (root / "exp" / "test_id.txt").write_text("6,x10\n")
    with pytest.raises(DataError, match=r"test_id.txt line 1: expected comma-separated integers, found 'x10'"):
        load_split("sysu", root, "query")
    (root / "cam5").rmdir()
    with pytest.raises(DataError, match="cam5"):
        load_split("sysu", root, "train")


# --------------------------------------------------------------------------- LLCM


def _llcm(root: Path) -> Path:
    (root / "idx").mkdir(parents=True)
    for name, folder in (("train_vis.txt", "vis"), ("train_nir.txt", "nir")):
        lines = []
        for label, pid in enumerate((4, 8)):
            rel = f"{folder}/cam2/{pid:04d}/{pid:04d}_c02_0001.jpg"
            _img(root / rel)
            lines.append(f"{rel} {label}")
        (root / "idx" / name).write_text("\n".join(lines) + "\n")
    (root / "idx" / "test_id.txt").write_text("12,15")
    for pid in (12, 15):
        _img(root / "test_vis" / "cam1" / f"{pid:04d}" / "a.jpg")
        _img(root / "test_vis" / "cam9" / f"{pid:04d}" / "b.jpg")
        _img(root / "test_nir" / "cam4" / f"{pid:04d}" / "c.jpg")
    return root


def test_llcm_splits_and_errors(tmp_path):
    root = _llcm(tmp_path / "LLCM")
    train, original = load_train("llcm", root)
    assert original == [4, 8] and {(r.modality, r.camera) for r in train} == {("rgb", 2), ("ir", 2)}
    query, gallery = load_split("llcm", root, "query"), load_split("llcm", root, "gallery")
    assert {(r.pid, r.camera, r.modality) for r in query} == {(12, 4, "ir"), (15, 4, "ir")}
    assert {(r.pid, r.camera) for r in gallery} == {(12, 1), (12, 9), (15, 1), (15, 9)}
    (root / "idx" / "train_nir.txt").write_text("nir/cam2/0004/x.jpg zero\n")
    with pytest.raises(DataError, match=r"train_nir.txt line 1"):
        load_split("llcm", root, "train")
    with pytest.raises(DataError, match="test_nir"):
        import shutil

        shutil.rmtree(root / "test_nir")
        load_split("llcm", root, "query")


# --------------------------------------------------------------------------- specs, images, import weight


def test_parse_dataset_spec():
    assert parse_dataset_spec("regdb:/data/RegDB:3") == ("regdb", Path("/data/RegDB"), 3)
    assert parse_dataset_spec("regdb:/data/RegDB") == ("regdb", Path("/data/RegDB"), 1)
    assert parse_dataset_spec("SYSU:rel/sysu") == ("sysu", Path("rel/sysu"), 1)
    assert parse_dataset_spec("llcm:C:/x") == ("llcm", Path("C:/x"), 1)
    for bad in ("market:/x", "regdb", "regdb:", "regdb:/x:11"):
        with pytest.raises(DataError):
            parse_dataset_spec(bad)
    with pytest.raises(DataError, match="split"):
        load_split("regdb", "/x", "val")


def test_read_image_and_batch(tmp_path):
    gray = read_image(_img(tmp_path / "t.png", 77, gray=True), 32, 16)
    assert gray.shape == (32, 16, 3) and gray.dtype == np.uint8
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 1] == gray[..., 2]).all() and gray[5, 5, 0] == 77
    color = tmp_path / "c.png"
    cv2.imwrite(str(color), np.dstack([np.full((8, 4), v, np.uint8) for v in (10, 20, 30)]))  # BGR on disk
    assert tuple(read_image(color, 8, 4)[0, 0]) == (30, 20, 10)  # RGB in memory
    with pytest.raises(DataError, match="nothere.png"):
        read_image(tmp_path / "nothere.png", 8, 4)
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"not a jpeg at all")
    with pytest.raises(DataError, match="corrupt.jpg"):
        read_image(corrupt, 8, 4)
    torch = pytest.importorskip("torch")
    batch = to_tensor_batch([gray, gray], (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    assert batch.shape == (2, 3, 32, 16) and batch.dtype == torch.float32
    assert torch.allclose(batch[0, :, 5, 5], torch.full((3,), (77 / 255 - 0.5) / 0.25))


def test_package_import_is_light():
    code = "import sys, hicmd.data; print('cv2' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
