"""Gallery draws and trial construction: official SYSU permutations, AGW seeded draws, RegDB/LLCM trials."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from hicmd.data import Record
from hicmd.evaluation.protocols import (
    build_trials,
    llcm_trial,
    load_permutations,
    regdb_trial,
    score,
    seeded_draw,
    sysu_gallery,
)

# shared/ lies beside the checkout (for the session and for CI's fresh clone alike).
SYSU_EVAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "sysu-mm01-eval"
PERM_FILE = SYSU_EVAL / "rand_perm_cam.mat"
needs_perm = pytest.mark.skipif(not PERM_FILE.is_file(), reason="official rand_perm_cam.mat not available")


@pytest.fixture(scope="module")
def sysu_like():
    """Records of a SYSU-like test split whose (cam, pid) file counts are those of rand_perm_cam.mat,
    so the official permutations index into it exactly as into the real dataset (no image bytes needed)."""
    perm = load_permutations(PERM_FILE)
    test_ids = scipy.io.loadmat(str(SYSU_EVAL / "test_id.mat"))["id"].ravel().tolist()
    records = []
    for pid in test_ids:
        for cam in range(1, 7):
            cell = perm.cells[cam - 1]
            count = cell[pid - 1].shape[1] if pid <= len(cell) else 0
            modality = "ir" if cam in (3, 6) else "rgb"
            # files numbered 0001..n as on disk; shuffled so the draw must sort them itself
            names = [f"{i:04d}.jpg" for i in range(1, count + 1)]
            random.Random(pid * 10 + cam).shuffle(names)
            records += [Record(Path(f"/sysu/cam{cam}/{pid:04d}/{n}"), pid, cam, modality) for n in names]
    gallery = [r for r in records if r.modality == "rgb"]
    query = [r for r in records if r.modality == "ir"]
    return perm, query, gallery


@needs_perm
def test_official_gallery_sizes(sysu_like):
    perm, query, candidates = sysu_like
    assert len(query) == 3803  # cam3 1,883 + cam6 1,920 (docs/reference/evaluation.md §2)
    pairs_all = {(r.pid, r.camera) for r in candidates}
    pairs_indoor = {p for p in pairs_all if p[1] in (1, 2)}
    for mode, pairs, size in (("all", pairs_all, 301), ("indoor", pairs_indoor, 112)):
        single = sysu_gallery(candidates, mode, trial=1, shots=1, perm=perm)
        assert len(single) == size == len(pairs)
        assert sorted((r.pid, r.camera) for r in single) == sorted(pairs)  # one image per (pid, cam) present
        multi = sysu_gallery(candidates, mode, trial=1, shots=10, perm=perm)
        assert len(multi) == 10 * size
        assert len(set(multi)) == len(multi)  # ten different images of each (pid, cam)


@needs_perm
def test_official_gallery_uses_one_based_rows_of_the_permutation(sysu_like):
    perm, _, candidates = sysu_like
    for trial in (1, 7, 10):
        gallery = sysu_gallery(candidates, "all", trial=trial, shots=10, perm=perm)
        for r in gallery[:40]:
            row = perm.cells[r.camera - 1][r.pid - 1][trial - 1, :10]
            assert int(r.path.stem) in row  # file NNNN.jpg is index NNNN (1-based) of the sorted list
        first = gallery[0]  # first drawn file of the first (pid, cam) is row[0]
        assert int(first.path.stem) == perm.cells[first.camera - 1][first.pid - 1][trial - 1, 0]
    t1 = sysu_gallery(candidates, "all", 1, perm=perm)
    t2 = sysu_gallery(candidates, "all", 2, perm=perm)
    assert t1 != t2


@needs_perm
def test_permutation_count_mismatch_is_reported(sysu_like):
    perm, _, candidates = sysu_like
    with pytest.raises(ValueError, match="permutation file lists"):
        sysu_gallery(candidates[1:], "all", 1, perm=perm)  # one file of the first (pid, cam) missing


def test_agw_seeded_draw_is_deterministic_and_matches_stdlib_random():
    files = [Record(Path(f"/d/cam{c}/{p:04d}/{i:04d}.jpg"), p, c, "rgb")
             for p in (3, 1, 2) for c in (5, 1, 2, 4) for i in range(1, 4 + p + c)]
    for trial in (1, 4):
        drawn = sysu_gallery(files, "all", trial)
        # AGW process_gallery_sysu, written out: seed(trial - 1); pid ascending; cams 1, 2, 4, 5; choice(sorted)
        random.seed(trial - 1)
        expected = []
        for pid in (1, 2, 3):
            for cam in (1, 2, 4, 5):
                names = sorted(str(r.path) for r in files if r.pid == pid and r.camera == cam)
                expected.append(random.choice(names))
        assert [str(r.path) for r in drawn] == expected
        assert sysu_gallery(list(reversed(files)), "all", trial) == drawn  # input order does not matter
    assert sysu_gallery(files, "all", 1) != sysu_gallery(files, "all", 2)
    indoor = sysu_gallery(files, "indoor", 1)
    assert {r.camera for r in indoor} == {1, 2} and len(indoor) == 6
    with pytest.raises(ValueError, match="multi-shot"):
        sysu_gallery(files, "all", 1, shots=10)


def test_regdb_and_llcm_directions():
    vis = [Record(Path(f"/v/{p}/{i}.bmp"), p, 1, "rgb") for p in range(3) for i in range(2)]
    ir = [Record(Path(f"/t/{p}/{i}.bmp"), p, 2, "ir") for p in range(3) for i in range(2)]
    v2t, t2v = regdb_trial(vis, ir, "v2t", 1), regdb_trial(vis, ir, "t2v", 1)
    assert (v2t.query, v2t.gallery) == (vis, ir) and (t2v.query, t2v.gallery) == (ir, vis)
    ll = llcm_trial(vis, ir, "t2v", 3)
    assert ll.query == ir and len(ll.gallery) == 3 and {r.modality for r in ll.gallery} == {"rgb"}
    assert ll.gallery == seeded_draw(vis, None, 3)


def test_score_uses_negative_dot_product():
    vis = [Record(Path(f"/v/{p}.bmp"), p, 1, "rgb") for p in range(3)]
    ir = [Record(Path(f"/t/{p}.bmp"), p, 2, "ir") for p in range(3)]
    trial = regdb_trial(vis, ir, "v2t", 1)
    eye = np.eye(3)
    assert score(trial, eye, eye).r1 == 1.0  # each query most similar to its own id
    assert score(trial, eye, eye[[1, 2, 0]]).r1 == 0.0  # features rotated: every top-1 is wrong


def _touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")


def test_build_trials_from_disk(tmp_path):
    regdb = tmp_path / "regdb"
    for t in (1, 2):
        for name, folder in (("visible", "Visible"), ("thermal", "Thermal")):
            lines = []
            for label, pid in enumerate((10 + t, 20 + t)):
                for i in range(2):
                    rel = f"{folder}/{pid}/{name}_{i}.bmp"
                    _touch(regdb / rel)
                    lines.append(f"{rel} {label}")
            (regdb / "idx").mkdir(exist_ok=True)
            (regdb / "idx" / f"test_{name}_{t}.txt").write_text("\n".join(lines) + "\n")
    trials = build_trials("regdb", regdb, [1, 2], ("v2t", "t2v"))
    assert [(t.trial, t.setting) for t in trials] == [(1, "v2t"), (1, "t2v"), (2, "v2t"), (2, "t2v")]
    assert {r.pid for r in trials[2].query} == {12, 22} and trials[0].query[0].modality == "rgb"

    sysu = tmp_path / "sysu"
    (sysu / "exp").mkdir(parents=True)
    (sysu / "exp" / "test_id.txt").write_text("1,2\n")
    for cam in range(1, 7):
        (sysu / f"cam{cam}").mkdir(exist_ok=True)
        for pid in (1, 2):
            for i in range(1, 4):
                _touch(sysu / f"cam{cam}" / f"{pid:04d}" / f"{i:04d}.jpg")
    trials = build_trials("sysu", sysu, [1, 2, 3], modes=("all", "indoor"))
    assert [t.setting for t in trials] == ["all-search 1-shot"] * 3 + ["indoor-search 1-shot"] * 3
    assert len(trials[0].query) == 12 and len(trials[0].gallery) == 8 and len(trials[3].gallery) == 4


def _write_perm_file(path: Path, counts: dict[tuple[int, int], int], pids: int, trials: int = 10) -> None:
    """A rand_perm_cam.mat-style file: a 6x1 cell of (pids x 1) cells of (trials x n) 1-based permutations."""
    rng = np.random.default_rng(0)
    table = np.empty((6, 1), dtype=object)
    for cam in range(1, 7):
        cell = np.empty((pids, 1), dtype=object)
        for pid in range(1, pids + 1):
            n = counts.get((cam, pid), 0)
            cell[pid - 1, 0] = np.stack([rng.permutation(n) + 1 for _ in range(trials)]).astype(np.uint16) \
                if n else np.zeros((trials, 0), np.uint16)
        table[cam - 1, 0] = cell
    scipy.io.savemat(str(path), {"rand_perm_cam": table})


def test_synthetic_permutation_file_round_trip(tmp_path):
    """Works without the official file: write one in its format, read it back, draw with it."""
    counts = {(1, 1): 3, (2, 1): 12, (4, 2): 11, (5, 2): 1}
    _write_perm_file(tmp_path / "perm.mat", counts, pids=2)
    perm = load_permutations(tmp_path / "perm.mat")
    assert perm.num_trials == 10
    records = [Record(Path(f"/s/cam{c}/{p:04d}/{i:04d}.jpg"), p, c, "rgb")
               for (c, p), n in counts.items() for i in range(1, n + 1)]
    single = sysu_gallery(records, "all", 4, 1, perm)
    assert [(r.pid, r.camera) for r in single] == [(1, 1), (1, 2), (2, 4), (2, 5)]
    for r in single:
        assert int(r.path.stem) == perm.cells[r.camera - 1][r.pid - 1][3, 0]  # row 4, first entry, 1-based
    multi = sysu_gallery(records, "all", 4, 10, perm)
    assert len(multi) == 3 + 10 + 10 + 1  # fewer than 10 images: all of them
    indoor = sysu_gallery(records, "indoor", 4, 10, perm)
    assert len(indoor) == 13
    with pytest.raises(ValueError, match="no 6-camera"):
        scipy.io.savemat(str(tmp_path / "bad.mat"), {"other": np.zeros(3)})
        load_permutations(tmp_path / "bad.mat")


def test_build_llcm_trials_from_disk(tmp_path):
    (tmp_path / "idx").mkdir()
    (tmp_path / "idx" / "test_id.txt").write_text("5,8\n")
    for folder, cams in (("test_vis", (1, 2, 3)), ("test_nir", (1, 2))):
        for cam in cams:
            for pid in (5, 8):
                for i in range(3):
                    _touch(tmp_path / folder / f"cam{cam}" / f"{pid:04d}" / f"{i}.jpg")
    trials = build_trials("llcm", tmp_path, [1, 2], ("v2t", "t2v"))
    assert [(t.setting, t.trial) for t in trials] == [("v2t", 1), ("v2t", 2), ("t2v", 1), ("t2v", 2)]
    v2t, t2v = trials[0], trials[2]
    assert len(v2t.query) == 18 and len(v2t.gallery) == 4 and {r.modality for r in v2t.gallery} == {"ir"}
    assert len(t2v.query) == 12 and len(t2v.gallery) == 6 and {r.modality for r in t2v.gallery} == {"rgb"}
