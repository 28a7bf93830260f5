"""Feature extraction, `evaluate()` and `hicmd eval` with the real (tiny, untrained) model on a RegDB-layout tree."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from hicmd.cli import app
from hicmd.config import config_to_dict
from hicmd.presets import PRESETS
from hicmd.data import Record, load_split
from hicmd.data.io import read_image, to_tensor_batch
from hicmd.errors import HicmdError
from hicmd.evaluation import eval_regdb, evaluate
from hicmd.evaluation.extract import embed_batch, extract_features
from hicmd.model import HiCMD
from hicmd.checkpoint import save_checkpoint

# the tiny preset, smaller still so these tests stay quick on a busy 2-core machine
CFG = replace(PRESETS["tiny"], model=replace(PRESETS["tiny"].model, height=96, width=48, encoder_residual=1))
PIDS = (3, 7, 9)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return HiCMD(CFG.model, num_classes=4).eval()


@pytest.fixture(scope="module")
def checkpoint(model, tmp_path_factory) -> Path:
    return save_checkpoint(tmp_path_factory.mktemp("run") / "last.pt", {
        "config": config_to_dict(CFG), "num_classes": 4, "model": model.state_dict(), "iteration": 0})


@pytest.fixture(scope="module")
def regdb(tmp_path_factory) -> Path:
    """RegDB layout, trial 1: 3 identities x 2 images per modality; each identity has its own colour pattern."""
    root = tmp_path_factory.mktemp("regdb")
    rng = np.random.default_rng(0)
    (root / "idx").mkdir()
    for name, folder in (("visible", "Visible"), ("thermal", "Thermal")):
        lines = []
        for label, pid in enumerate(PIDS):
            base = rng.integers(0, 255, (8, 4, 3))
            for i in range(2):
                image = np.kron(base, np.ones((4, 4, 1))) + rng.integers(0, 30, (32, 16, 3))
                if folder == "Thermal":
                    image = image.mean(axis=2, keepdims=True).repeat(3, axis=2)
                (root / folder / str(pid)).mkdir(parents=True, exist_ok=True)
                rel = f"{folder}/{pid}/{name}_{i}.png"
                cv2.imwrite(str(root / rel), np.clip(image, 0, 255).astype(np.uint8))
                lines.append(f"{rel} {label}")
        (root / "idx" / f"test_{name}_1.txt").write_text("\n".join(lines) + "\n")
    return root


def _direct(model, records: list[Record], modality: str, flip: bool = False) -> np.ndarray:
    x = to_tensor_batch([read_image(r.path, CFG.model.height, CFG.model.width) for r in records],
                        CFG.model.mean, CFG.model.std)
    with torch.inference_mode():
        f = model.embed(x, modality)
        if flip:
            f = torch.nn.functional.normalize(f + model.embed(x.flip(3), modality), dim=1)
    return f.double().numpy()


def test_extract_routes_each_modality_to_its_encoders(model, regdb):
    # the IR encoders start as copies of the RGB ones: make them differ so a wrong routing shows
    routed = copy.deepcopy(model)
    with torch.no_grad():
        for p in routed.prototype["ir"].parameters():
            p.add_(0.05 * torch.randn_like(p))
    visible, thermal = load_split("regdb", regdb, "query"), load_split("regdb", regdb, "gallery")
    mixed = [r for pair in zip(visible, thermal) for r in pair]  # rgb, ir, rgb, ir, ...
    features = extract_features(routed, mixed, CFG.model, batch_size=4, show_progress=False)
    assert features.shape == (12, CFG.model.embedding_dim) and features.dtype == np.float64
    assert np.allclose(np.linalg.norm(features, axis=1), 1.0, atol=1e-5)
    assert np.allclose(features[0::2], _direct(routed, visible, "rgb"), atol=1e-5)
    assert np.allclose(features[1::2], _direct(routed, thermal, "ir"), atol=1e-5)
    assert not np.allclose(features[1::2], _direct(routed, thermal, "rgb"), atol=1e-3)


def test_flip_is_a_real_second_pass(model):
    torch.manual_seed(1)
    x = torch.randn(2, 3, CFG.model.height, CFG.model.width)
    plain, flipped = embed_batch(model, x, "rgb"), embed_batch(model, x, "rgb", flip=True)
    with torch.inference_mode():
        expected = torch.nn.functional.normalize(model.embed(x, "rgb") + model.embed(x.flip(3), "rgb"), dim=1)
    assert torch.allclose(flipped, expected, atol=1e-6)
    assert not torch.allclose(flipped, plain, atol=1e-4)  # an asymmetric input must change the feature
    assert torch.allclose(flipped.norm(dim=1), torch.ones(2), atol=1e-5)


def test_evaluate_matches_direct_computation(model, regdb):
    results = evaluate(model, CFG, f"regdb:{regdb}", show_progress=False)
    assert set(results["settings"]) == {"v2t", "t2v"} and results["num_images"] == 12
    visible, thermal = load_split("regdb", regdb, "query"), load_split("regdb", regdb, "gallery")
    fv, ft = _direct(model, visible, "rgb"), _direct(model, thermal, "ir")
    pv, pt = np.array([r.pid for r in visible]), np.array([r.pid for r in thermal])
    for name, expected in (("v2t", eval_regdb(-fv @ ft.T, pv, pt)), ("t2v", eval_regdb(-ft @ fv.T, pt, pv))):
        got = results["settings"][name]
        assert got["trials"] == [1]
        assert np.isclose(got["mAP"], 100 * expected.mAP) and np.isclose(got["r1"], 100 * expected.r1)
        assert np.allclose(got["cmc"], 100 * expected.cmc)


def test_evaluate_sysu_modes_and_trials(model, tmp_path):
    """SYSU path of evaluate(): both search modes, three seeded trials, one feature pass for all of them."""
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "test_id.txt").write_text("4,11\n")
    rng = np.random.default_rng(2)
    for cam in range(1, 7):
        for pid in (4, 11):
            (tmp_path / f"cam{cam}" / f"{pid:04d}").mkdir(parents=True)
            for i in range(1, 3 if cam in (3, 6) else 2):
                cv2.imwrite(str(tmp_path / f"cam{cam}" / f"{pid:04d}" / f"{i:04d}.jpg"),
                            rng.integers(0, 255, (40, 20, 3), dtype=np.uint8))
    results = evaluate(model, CFG, f"sysu:{tmp_path}", trials=[1, 2, 3], modes=("all", "indoor"),
                       show_progress=False)
    assert list(results["settings"]) == ["all-search 1-shot", "indoor-search 1-shot"]
    assert results["num_images"] == 8 + 8  # 8 IR queries + every RGB candidate, embedded once
    for row in results["settings"].values():
        assert row["trials"] == [1, 2, 3]
        assert np.isclose(row["r1"], np.mean([t["r1"] for t in row["per_trial"]]))
        assert np.isclose(row["std"]["mAP"], np.std([t["mAP"] for t in row["per_trial"]]))
        assert row["num_query"] == 8 and row["num_valid"] == 8
    assert "AGW seeded" in results["protocol"]
    from hicmd.evaluation.report import results_table

    assert results_table(results).row_count == len(results["settings"])
    assert results_table(results, per_trial=True).row_count == len(results["settings"]) * 4  # + 3 trial rows


def test_cli_writes_table_json_and_png(checkpoint, regdb):
    result = CliRunner().invoke(app, ["eval", str(checkpoint), "--data", f"regdb:{regdb}", "--direction", "v2t",
                                      "--flip"])
    out = checkpoint.parent / "eval_regdb"  # default: next to the checkpoint
    assert result.exit_code == 0, result.output
    assert "visible -> thermal" in result.output and "mINP" in result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics["settings"]) == ["v2t"] and metrics["flip"] is True
    assert 0 <= metrics["settings"]["v2t"]["mAP"] <= 100
    png = cv2.imread(str(out / "cmc.png"))
    assert png is not None and png.shape[0] > 100


@pytest.mark.parametrize("args, message", [
    (["missing.pt", "--data", "regdb:/nowhere"], "not found"),
    (["CKPT", "--data", "market:/x"], "must look like"),
    (["CKPT", "--data", "regdb:/nowhere/at/all"], "/nowhere/at/all"),
    (["CKPT", "--data", "sysu:/x", "--direction", "v2t"], "IR images only"),
    (["CKPT", "--data", "regdb:/x", "--trials", "0-3"], "numbered from 1"),
    (["CKPT", "--data", "sysu:/x", "--shots", "10"], "needs the official permutations"),
])
def test_cli_user_errors(checkpoint, args, message):
    args = [str(checkpoint) if a == "CKPT" else a for a in args]
    result = CliRunner().invoke(app, ["eval", *args], standalone_mode=False)
    assert isinstance(result.exception, HicmdError), result.output
    assert message in str(result.exception)


def test_regdb_ten_split_protocol_one_checkpoint_per_split(model, regdb, tmp_path):
    """Several checkpoints: checkpoint i on split i, mean and std over them; a checkpoint scored on a split it was
    not trained for is warned about."""
    import shutil

    data = tmp_path / "regdb"
    shutil.copytree(regdb, data)
    for split_file in list((data / "idx").glob("*_1.txt")):
        shutil.copy(split_file, split_file.with_name(split_file.name.replace("_1.txt", "_2.txt")))
    state = {"config": config_to_dict(CFG), "num_classes": 4, "model": model.state_dict(), "iteration": 0}
    one = save_checkpoint(tmp_path / "r1.pt", {**state, "dataset": f"regdb:{data}:1"})
    also_one = save_checkpoint(tmp_path / "r2.pt", {**state, "dataset": f"regdb:{data}:1"})
    result = CliRunner().invoke(app, ["eval", str(one), str(also_one), "--data", f"regdb:{data}", "--out",
                                      str(tmp_path / "ev"), "--direction", "v2t"])
    assert result.exit_code == 0, result.output
    assert "r2.pt was trained on RegDB split 1 but is evaluated on split 2" in " ".join(result.output.split())
    row = json.loads((tmp_path / "ev" / "metrics.json").read_text())["settings"]["v2t"]
    assert row["trials"] == [1, 2] and [r["checkpoint"] for r in row["per_trial"]] == [str(one), str(also_one)]
    assert row["std"]["r1"] == pytest.approx(0.0) and row["r1"] == pytest.approx(row["per_trial"][0]["r1"])
    wrong = CliRunner().invoke(app, ["eval", str(one), str(also_one), "--data", f"regdb:{data}", "--trials", "1"])
    assert isinstance(wrong.exception, HicmdError) and "one split per checkpoint" in str(wrong.exception)
