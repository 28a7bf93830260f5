"""Readers for the release layouts of RegDB, SYSU-MM01 and LLCM (docs/reference/evaluation.md §2-4).

Each reader returns `Record`s with the dataset's own person ids; `load_split("train")` relabels them to
0..N-1 for classification and `load_train` also returns the original id of every new label. Query and gallery
keep the original ids, so both modalities (and SynthVI videos) share one id space. Gallery splits hold every
candidate image; the single-shot draws of the SYSU/LLCM protocols belong to the evaluator.
Only pathlib here: reading the split lists needs neither OpenCV nor torch.
"""

from __future__ import annotations

import re
from pathlib import Path

from hicmd.data.records import DataError, Record

__all__ = [
    "DATASET_KINDS",
    "SPLITS",
    "IMAGE_SUFFIXES",
    "parse_dataset_spec",
    "regdb_split",
    "sysu_split",
    "llcm_split",
    "relabel",
    "load_split",
    "load_train",
]

DATASET_KINDS = ("regdb", "sysu", "llcm")
SPLITS = ("train", "query", "gallery")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
SYSU_RGB_CAMS = (1, 2, 4, 5)
SYSU_IR_CAMS = (3, 6)
REGDB_CAMERA = {"rgb": 1, "ir": 2}  # AGW eval_regdb: visible 1, thermal 2


def parse_dataset_spec(spec: str) -> tuple[str, Path, int]:
    """`"regdb:PATH[:trial]" | "sysu:PATH" | "llcm:PATH"` -> (kind, path, trial); trial defaults to 1."""
    kind, sep, rest = spec.partition(":")
    kind = kind.strip().lower()
    if not sep or kind not in DATASET_KINDS or not rest:
        raise DataError(f"dataset {spec!r} must look like regdb:PATH[:trial], sysu:PATH or llcm:PATH")
    trial = 1
    head, sep, tail = rest.rpartition(":")
    if sep and tail.isdigit() and head:
        rest, trial = head, int(tail)
    if kind == "regdb" and not 1 <= trial <= 10:
        raise DataError(f"dataset {spec!r}: RegDB trial must be 1..10, got {trial}")
    return kind, Path(rest).expanduser(), trial


# --------------------------------------------------------------------------- helpers


def _require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise DataError(f"{path} is not a folder; expected {what}")
    return path


def _require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise DataError(f"{path} does not exist; expected {what}")
    return path


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not UTF-8 text (byte {exc.start}); expected {what}") from None


def _read_list(path: Path, what: str) -> list[tuple[str, int, int]]:
    """Lines "relative/path label" -> (relative path, label, line number); blank lines are skipped."""
    _require_file(path, what)
    rows = []
    for number, line in enumerate(_read_text(path, what).splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise DataError(f"{path} line {number}: expected 'relative/path label', got {line.strip()!r}")
        rows.append((parts[0], int(parts[1]), number))
    if not rows:
        raise DataError(f"{path} is empty; expected {what}")
    return rows


def _read_ids(path: Path) -> list[int]:
    """SYSU/LLCM id files: one line of comma-separated integers."""
    what = "one line of comma-separated person ids"
    _require_file(path, what)
    lines = [line for line in _read_text(path, what).splitlines() if line.strip()]
    if not lines:
        raise DataError(f"{path} is empty; expected one line of comma-separated person ids")
    tokens = [t.strip() for t in lines[0].split(",") if t.strip()]
    bad = [t for t in tokens if not t.isdigit()]
    if bad or not tokens:
        raise DataError(f"{path} line 1: expected comma-separated integers, found {bad[0] if bad else 'nothing'!r}")
    return [int(t) for t in tokens]


def _images_in(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def _listed_records(root: Path, list_file: Path, modality: str, camera_of) -> list[Record]:
    records = []
    for rel, label, number in _read_list(list_file, "lines 'relative/path label'"):
        path = root / rel
        if not path.is_file():
            raise DataError(f"{list_file} line {number}: image {path} does not exist")
        folder = path.parent.name
        pid = int(folder) if folder.isdigit() else label
        records.append(Record(path, pid, camera_of(rel), modality))
    return records


# --------------------------------------------------------------------------- RegDB


def regdb_split(root: str | Path, split: str, trial: int = 1) -> list[Record]:
    """RegDB: train = train_visible + train_thermal; query = test_visible; gallery = test_thermal (V->T)."""
    root = _require_dir(Path(root), "a RegDB folder holding Visible/, Thermal/ and idx/")
    _require_dir(root / "idx", "idx/{train,test}_{visible,thermal}_{trial}.txt split files")
    stage = "train" if split == "train" else "test"
    names = {"train": ("visible", "thermal"), "query": ("visible",), "gallery": ("thermal",)}[split]
    records = []
    for name in names:
        modality = "rgb" if name == "visible" else "ir"
        list_file = root / "idx" / f"{stage}_{name}_{trial}.txt"
        records += _listed_records(root, list_file, modality, lambda _rel, m=modality: REGDB_CAMERA[m])
    return records


# --------------------------------------------------------------------------- SYSU-MM01


def sysu_split(root: str | Path, split: str, with_val: bool = False) -> list[Record]:
    """SYSU-MM01: train = train ids (+ val ids) in all six cameras; query = IR cams 3, 6 of the test ids;
    gallery = every visible image (cams 1, 2, 4, 5) of the test ids, in pid, camera, file order."""
    root = _require_dir(Path(root), "a SYSU-MM01 folder holding cam1..cam6/ and exp/")
    for cam in range(1, 7):
        _require_dir(root / f"cam{cam}", f"cam{cam}/<pid:04d>/<nnnn>.jpg")
    exp = _require_dir(root / "exp", "exp/{train,val,test}_id.txt")
    if split == "train":
        ids = _read_ids(exp / "train_id.txt") + (_read_ids(exp / "val_id.txt") if with_val else [])
        cams = SYSU_RGB_CAMS + SYSU_IR_CAMS
    else:
        ids = _read_ids(exp / "test_id.txt")
        cams = SYSU_IR_CAMS if split == "query" else SYSU_RGB_CAMS
    records = []
    for pid in sorted(set(ids)):
        for cam in cams:
            modality = "ir" if cam in SYSU_IR_CAMS else "rgb"
            records += [Record(p, pid, cam, modality) for p in _images_in(root / f"cam{cam}" / f"{pid:04d}")]
    if not records:
        raise DataError(f"{root}: no images of the {split} ids under cam{cams[0]}..cam{cams[-1]}/<pid:04d>/")
    return records


# --------------------------------------------------------------------------- LLCM

_CAM = re.compile(r"cam(\d+)")


def _camera_in(rel: str) -> int:
    match = _CAM.search(rel)
    return int(match.group(1)) if match else 0


def llcm_split(root: str | Path, split: str) -> list[Record]:
    """LLCM: train = idx/train_vis.txt + idx/train_nir.txt; query = test_nir (IR -> VIS, DEEN test_mode [1,2]);
    gallery = every test_vis image of the test ids."""
    root = _require_dir(Path(root), "an LLCM folder holding idx/, test_vis/ and test_nir/")
    idx = _require_dir(root / "idx", "idx/train_vis.txt, idx/train_nir.txt and idx/test_id.txt")
    if split == "train":
        return (_listed_records(root, idx / "train_vis.txt", "rgb", _camera_in)
                + _listed_records(root, idx / "train_nir.txt", "ir", _camera_in))
    ids = sorted(set(_read_ids(idx / "test_id.txt")))
    folder, modality = ("test_nir", "ir") if split == "query" else ("test_vis", "rgb")
    base = _require_dir(root / folder, f"{folder}/cam<N>/<pid:04d>/<images>")
    cams = sorted((int(d.name[3:]), d) for d in base.iterdir() if d.is_dir() and _CAM.fullmatch(d.name))
    records = [Record(p, pid, cam, modality) for pid in ids for cam, d in cams for p in _images_in(d / f"{pid:04d}")]
    if not records:
        raise DataError(f"{base}: no images of the test ids under cam<N>/<pid:04d>/")
    return records


# --------------------------------------------------------------------------- entry points


def relabel(records: list[Record]) -> tuple[list[Record], list[int]]:
    """Map person ids to 0..N-1 in sorted order; returns the new records and `original[new_label]`."""
    original = sorted({r.pid for r in records})
    new = {pid: i for i, pid in enumerate(original)}
    return [Record(r.path, new[r.pid], r.camera, r.modality) for r in records], original


def _read(kind: str, root: str | Path, split: str, trial: int) -> list[Record]:
    if split not in SPLITS:
        raise DataError(f"split {split!r} is not one of {', '.join(SPLITS)}")
    if kind == "regdb":
        return regdb_split(root, split, trial)
    if kind == "sysu":
        return sysu_split(root, split)
    if kind == "llcm":
        return llcm_split(root, split)
    raise DataError(f"dataset kind {kind!r} is not one of {', '.join(DATASET_KINDS)}")


def load_split(kind: str, root: str | Path, split: str = "train", trial: int = 1) -> list[Record]:
    """Records of one split. Train ids are relabelled 0..N-1; query/gallery keep the dataset's ids.
    `trial` picks the RegDB split files; SYSU/LLCM gallery draws per trial are the evaluator's job."""
    records = _read(kind, root, split, trial)
    return relabel(records)[0] if split == "train" else records


def load_train(kind: str, root: str | Path, trial: int = 1) -> tuple[list[Record], list[int]]:
    """Training records relabelled 0..N-1 and the original id of each label."""
    return relabel(_read(kind, root, "train", trial))
