"""The stream's distance gates measured at export (export/gates.py): on a test split's stills or on the people of
clips with ground truth (`hicmd export --gate-clips`)."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hicmd.data.synthvi_video import write_videos
from hicmd.export.gates import _scene_curve, footage_images, gates_lines, measure_gates
from hicmd.runtime.detect import read_mot


def _people(centres: np.ndarray, per: int, noise: float, seed: int) -> tuple[dict, dict, np.ndarray]:
    """`per` crops per person and modality around each person's centre (unit vectors; `noise` per dimension).
    Images are row numbers into the returned table; the fake embedder looks them up."""
    rng = np.random.default_rng(seed)
    table, images, pids = [], {}, {}
    for modality in ("rgb", "ir"):
        rows = centres.repeat(per, 0) + rng.normal(0, noise, (len(centres) * per, centres.shape[1]))
        images[modality] = np.arange(len(table), len(table) + len(rows)).reshape(-1, 1, 1, 1)
        pids[modality] = np.arange(len(centres)).repeat(per)
        table += list(rows / np.linalg.norm(rows, axis=1, keepdims=True))
    return images, pids, np.asarray(table)


def _gates(images, pids, table, **kwargs) -> dict:
    return measure_gates(lambda x, _: table[x.reshape(-1)], images, pids, "test", **kwargs)


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=-1, keepdims=True)


def test_gates_sit_between_same_and_different_people_at_the_precision_asked() -> None:
    centres = _unit(np.random.default_rng(1).normal(0, 1, (40, 32)))
    images, pids, table = _people(centres, per=9, noise=0.3, seed=2)  # noisy enough for a few wrong picks
    gates = _gates(images, pids, table)
    d, match = gates["distances"], gates["match"]
    assert d["same_cross_median"] < match["threshold"] < d["different_cross_median"]
    assert 0.95 <= match["precision"] < 1 and match["recall"] > 0.5  # people this far apart are mostly matched
    assert d["same_within_median"] < gates["split"]["threshold"] < d["different_cross_median"]
    strict = _gates(images, pids, table, precision=0.99)["match"]  # surer picks: a tighter gate, fewer of them
    assert strict["threshold"] < match["threshold"] and strict["recall"] < match["recall"]
    assert strict["precision"] >= 0.99
    looser, stricter = gates["match_at_other_precisions"]  # recorded beside the stream's gate, from the same curve
    assert (looser["target_precision"], stricter["target_precision"]) == (0.9, 0.99) and stricter == strict
    assert looser["threshold"] >= match["threshold"] and looser["recall"] >= match["recall"]  # here both let all in
    assert looser["precision"] >= 0.9


def test_the_gates_lines_say_when_no_gate_reaches_a_precision() -> None:
    centres = _unit(np.random.default_rng(1).normal(0, 1, (40, 32)))
    gates = _gates(*_people(centres, per=9, noise=0.3, seed=2))
    match, looser = gates["match"], gates["match_at_other_precisions"][0]
    used, others = gates_lines(gates)
    assert used.startswith(f"stream gates (from test): match {match['threshold']:.3f} (precision "
                           f"{match['precision']:.3f}, recall {match['recall']:.3f}) with 4 people in view, split ")
    assert others.startswith("other match gates") and f"precision 0.90: {looser['threshold']:.3f}" in others
    unreachable = {**gates, "match": {**match, "precision": "nan", "recall": 0.0},  # as manifest.json writes it
                   "match_at_other_precisions": [{**looser, "target_precision": 0.99, "precision": "nan",
                                                  "recall": 0.0}]}
    used, others = gates_lines(unreachable)
    assert f"match {match['threshold']:.3f} (no gate reaches precision 0.95: " in used and "nan" not in used
    assert others.endswith(f"precision 0.99: {looser['threshold']:.3f} (no gate reaches precision 0.99: this one "
                           "lets 1 % of picks through)")
    before = {k: v for k, v in gates.items() if k != "match_at_other_precisions"}  # a manifest from before them
    assert gates_lines(before) == gates_lines(gates)[:1]


def test_the_gates_embed_each_image_with_its_mirror_image_as_the_stream_will(tmp_path: Path) -> None:
    import onnx

    from hicmd.export.gates import onnx_embedder
    from testkit.graphs import HEIGHT, WIDTH, embedder_graph, reference_embedder

    onnx.save(embedder_graph("ir"), tmp_path / "ir.onnx")
    images = np.random.default_rng(4).integers(0, 256, (5, HEIGHT, WIDTH, 3), dtype=np.uint8)
    plain = reference_embedder(images, "ir")["embedding"]
    want = _unit(plain + reference_embedder(images[:, :, ::-1].copy(), "ir")["embedding"])
    np.testing.assert_allclose(onnx_embedder(tmp_path / "ir.onnx", mirror=True)(images), want, atol=1e-5)
    np.testing.assert_allclose(onnx_embedder(tmp_path / "ir.onnx")(images), plain, atol=1e-5)
    assert not np.allclose(want, plain, atol=1e-3)


def test_on_footage_the_others_in_a_scene_are_people_of_the_same_clip() -> None:
    # Four clips of six people: within a clip they look alike (one clip's look plus a little of their own), across
    # clips not at all. A gate measured against anyone's tracklets would be loose; against the clip's own
    # look-alikes, the people one camera pair really sees together, it must be tighter.
    rng = np.random.default_rng(3)
    looks = _unit(rng.normal(0, 1, (4, 64)))
    centres = _unit(looks.repeat(6, 0) + 0.3 * _unit(rng.normal(0, 1, (24, 64))))
    images, pids, table = _people(centres, per=9, noise=0.1, seed=4)
    scene = {m: pids[m] // 6 for m in pids}
    anyone = _gates(images, pids, table)["match"]
    same_clip = _gates(images, pids, table, scene=scene)["match"]
    assert same_clip["threshold"] < anyone["threshold"]
    assert same_clip["recall"] < anyone["recall"]


def test_the_scene_curve_counts_every_scene_the_tracklets_allow() -> None:
    # Brute force over every scene (RGB tracklet, partner, others) on a small table with ties (the partner wins
    # them, as the assignment's first candidate does) and a `together` mask: the counted curve must be the same.
    rng = np.random.default_rng(5)
    dist = rng.integers(0, 12, (6, 9)) / 10.0
    same = np.zeros((6, 9), bool)
    for r in range(6):
        same[r, rng.choice(9, 1 + r % 3, replace=False)] = True
    together = rng.random((6, 9)) < 0.8
    grid = np.linspace(0, 1.2, 25)
    for people, mask in ((3, None), (3, together), (4, together)):
        others = ~same if mask is None else ~same & mask
        scenes = []  # (weight, nearest, right) of every scene
        rows = [r for r in range(6) if same[r].any() and others[r].sum() >= people - 1]
        for r in rows:
            partners = np.flatnonzero(same[r])
            drawn = list(itertools.combinations(np.flatnonzero(others[r]), people - 1))
            for p in partners:
                for rest in drawn:
                    cand = dist[r, [p, *rest]]
                    scenes.append((1 / (len(rows) * len(partners) * len(drawn)), cand.min(), cand.argmin() == 0))
        w, nearest, right = map(np.asarray, zip(*scenes))
        within = nearest[:, None] <= grid
        expected_right = (w[:, None] * (within & right[:, None])).sum(0)
        expected_wrong = (w[:, None] * (within & ~right[:, None])).sum(0)
        counted_right, counted_wrong = _scene_curve(dist, same, people, mask, grid)
        np.testing.assert_allclose(counted_right, expected_right, atol=1e-12)
        np.testing.assert_allclose(counted_wrong, expected_wrong, atol=1e-12)
        assert 0 < expected_wrong[-1] and expected_right[-1] + expected_wrong[-1] == pytest.approx(1.0)


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[Path]:
    return write_videos(tmp_path_factory.mktemp("gate-clips"), [1, 2, 3, 4, 5], seed=7, clips=2, frames=80)


def test_footage_images_are_the_gt_people_per_clip_at_the_model_size(clips: list[Path]) -> None:
    images, pids, scene = footage_images(clips, 80, 40, every=2)
    for cam in ("rgb", "ir"):
        assert images[cam].dtype == np.uint8 and images[cam].shape[1:] == (80, 40, 3)
        assert len(images[cam]) == len(pids[cam]) == len(scene[cam])
        assert (pids[cam] // 1_000_000 == scene[cam]).all()  # a person is (clip, gt id)
        assert set(scene[cam]) == {0, 1}  # both clips have people in both cameras
        for index, clip in enumerate(clips):
            gt = read_mot(clip / f"gt_{cam}.txt")
            boxes = [(f, int(b[5])) for f, rows in gt.items() if f % 2 == 0 for b in rows if b[3] - b[1] >= 12]
            assert sorted(pids[cam][scene[cam] == index] % 1_000_000) == sorted(pid for _, pid in boxes)


def _export(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hicmd", "export", *args], capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("layout", ["missing", "empty", "no-video"])
def test_gate_clips_without_their_files_are_one_line(tmp_path: Path, clips: list[Path], layout: str) -> None:
    checkpoint = tmp_path / "last.pt"
    checkpoint.write_bytes(b"never read: the gate clips are checked first")
    folder = tmp_path / layout
    if layout == "empty":
        folder.mkdir()
    elif layout == "no-video":
        folder.mkdir()
        for name in ("rgb.mp4", "gt_rgb.txt", "gt_ir.txt"):
            (folder / name).write_bytes((clips[0] / name).read_bytes())
    result = _export(str(checkpoint), "--out", str(tmp_path / "model"), "--gate-clips", str(clips[0]),
                     "--gate-clips", str(folder))
    assert result.returncode == 2, result.stderr
    assert "--gate-clips" in result.stderr and "Traceback" not in result.stderr
    assert ("lacks ir.mp4" if layout == "no-video" else "no clip with ground truth") in result.stderr
    assert not (tmp_path / "model").exists()


@pytest.mark.usefixtures("one_torch_thread")
def test_export_records_gates_measured_on_the_clips_and_refuses_clips_with_no_one(tmp_path: Path, clips: list[Path],
                                                                                 monkeypatch) -> None:
    import hicmd.export.gates as export_gates
    from hicmd.export.gates import GateClipsError
    from hicmd.export.pipeline import ExportOptions, run_export
    from hicmd.runtime.manifest import load_manifest
    from testkit.checkpoints import make_checkpoint

    checkpoint = make_checkpoint(tmp_path / "tiny.pt")
    mirrors, embedder = [], export_gates.onnx_embedder
    monkeypatch.setattr(export_gates, "onnx_embedder", lambda path, **kw: mirrors.append(kw) or embedder(path, **kw))
    run_export(checkpoint, tmp_path / "model", ExportOptions(verify=False, gate_clips=tuple(clips)))
    assert load_manifest(tmp_path / "model").mirror and mirrors == [{"mirror": True}] * 2  # measured as streamed
    gates = load_manifest(tmp_path / "model").gates
    assert gates["source"].startswith("footage: 2 clips") and 0 < gates["match"]["threshold"] <= 2
    assert str(clips[0].parent) not in (tmp_path / "model" / "manifest.json").read_text()  # no machine paths
    empty = tmp_path / "empty-clip"
    empty.mkdir()
    for name in ("rgb.mp4", "ir.mp4"):
        (empty / name).write_bytes((clips[0] / name).read_bytes())
    for name in ("gt_rgb.txt", "gt_ir.txt"):
        (empty / name).write_text("")
    with pytest.raises(GateClipsError, match="no person"):
        run_export(checkpoint, tmp_path / "other", ExportOptions(verify=False, gate_clips=(empty,)))
    assert not (tmp_path / "other").exists()
