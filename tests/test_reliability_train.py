"""Training outputs that survive crashes and resumes, the non-finite stop's advice, and bad inputs of the
training-side verbs: one line, exit 2, never a traceback (issue: reliability and security)."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hicmd.config import ConfigError, load_config
from hicmd.checkpoint import CheckpointError, load_checkpoint, load_model, save_checkpoint
from hicmd.train.housekeeping import prune_checkpoints, truncate_log
from hicmd.train.loop import TrainingStopped, train

from testkit.train import MICRO, micro_config, write_synth

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> str:
    return f"regdb:{write_synth(tmp_path_factory.mktemp('synth'))}"


def _hicmd(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hicmd", *args], capture_output=True, text=True, timeout=timeout,
                          cwd=REPO)


def _one_line(proc: subprocess.CompletedProcess, pattern: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and re.search(pattern, lines[0]), proc.stderr


def test_a_resume_cleans_crash_leftovers_and_continues_the_log(data, tmp_path):
    cfg = micro_config("train.save_every=2")
    out = tmp_path / "run"
    train(cfg, data, out, iters=2, show_progress=False)
    # a crash after iteration 2's checkpoint: rows 3-4 logged, a save of iteration 4 killed half-way
    with (out / "log.csv").open() as fh:
        rows = list(csv.reader(fh))
    with (out / "log.csv").open("a", newline="") as fh:
        for it in (3, 4):
            csv.writer(fh).writerow([str(it)] + rows[-1][1:])
    orphans = [out / "checkpoints" / ".iter_0000004.pt.k2j3.tmp", out / ".best.json.0a1b2c3d.tmp"]
    for orphan in orphans:
        orphan.write_bytes(b"\0" * 1024)
    train(cfg, data, out, iters=4, resume=out / "last.pt", show_progress=False)
    iterations = [r["iteration"] for r in csv.DictReader((out / "log.csv").open())]
    assert iterations == ["1", "2", "3", "4"]  # every iteration once
    assert not any(orphan.exists() for orphan in orphans)


def test_checkpoint_retention_keeps_the_newest(data, tmp_path):
    out = tmp_path / "run"
    train(micro_config("train.save_every=1", "train.keep_checkpoints=2"), data, out, iters=4, show_progress=False)
    assert sorted(p.name for p in (out / "checkpoints").glob("iter_*.pt")) == ["iter_0000003.pt", "iter_0000004.pt"]
    assert load_checkpoint(out / "last.pt")["iteration"] == 4
    folder = tmp_path / "keep-all"
    folder.mkdir()
    for i in range(3):
        (folder / f"iter_{i:07d}.pt").write_bytes(b"x")
    assert prune_checkpoints(folder, 0) == [] and len(list(folder.iterdir())) == 3


def test_truncate_log_keeps_rows_up_to_the_iteration(tmp_path):
    log = tmp_path / "log.csv"
    log.write_text("iteration,loss\n1,0.5\n2,0.4\n3,0.3\n4,0.2\n")
    assert truncate_log(log, 2) == 2
    assert log.read_text() == "iteration,loss\n1,0.5\n2,0.4\n"
    assert truncate_log(log, 2) == 0 and not list(tmp_path.glob(".*"))


@pytest.mark.parametrize("cut", ["1", "10,0.5", "10,0.5,0.", "2,0.4,0.12"])
def test_truncate_log_drops_a_row_cut_short(tmp_path, cut):
    """A kill or a full disk mid-row leaves a partial last line, whose iteration may itself be cut ("1" of "10"):
    it must not survive the resume, and the next row must not be glued onto it."""
    from hicmd.train.logs import CsvLog

    log = tmp_path / "log.csv"
    log.write_text("iteration,loss,lr\n1,0.5,0.1\n" + cut)
    assert truncate_log(log, 5) == 1
    CsvLog(log).write({"iteration": 2, "loss": 0.4, "lr": 0.1})
    assert log.read_text().splitlines() == ["iteration,loss,lr", "1,0.5,0.1", "2,0.4,0.1"]


def test_the_non_finite_stop_advises_a_resume_the_tool_accepts(data, tmp_path, monkeypatch):
    import hicmd.losses

    real, calls = hicmd.losses.code_l2_pull, {"n": 0}

    def nan_from_second_step(*codes):
        calls["n"] += 1
        return real(*codes) * (float("nan") if calls["n"] >= 2 else 1.0)

    monkeypatch.setattr(hicmd.losses, "code_l2_pull", nan_from_second_step)
    out = tmp_path / "run"
    with pytest.raises(TrainingStopped) as stopped:
        train(micro_config("train.max_nonfinite=2", "train.save_every=1"), data, out, iters=5, show_progress=False)
    advice = re.search(r"e\.g\. (--resume .*)$", str(stopped.value)).group(1).split()
    assert "--resume" in advice and "train.amp=none" in advice
    monkeypatch.undo()
    sets = [a for s in MICRO for a in ("--set", s)]
    proc = _hicmd("train", "--config", "tiny", *sets, "--data", data, "--out", str(out), "--iters", "2", *advice,
                  "--no-eval", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "no longer a bit-exact continuation" in " ".join((proc.stdout + proc.stderr).split())
    resumed = load_checkpoint(out / "last.pt")
    assert resumed["iteration"] == 2
    lr_id = float(next(a for a in advice if a.startswith("train.lr_id=")).split("=")[1])
    group = resumed["trainer"]["optimizers"]["id"]["param_groups"][0]
    assert group["lr"] == pytest.approx(lr_id) and group["initial_lr"] == pytest.approx(lr_id)


def test_a_save_with_non_finite_weights_is_skipped(data, tmp_path, monkeypatch):
    import hicmd.train.hooks as hooks

    real_save = hooks.SaveHook._save
    saved: list[int] = []

    def spy(self, iteration):
        saved.append(iteration)
        return real_save(self, iteration)

    monkeypatch.setattr(hooks.SaveHook, "_save", spy)
    real_finite = hooks.finite_weights
    monkeypatch.setattr(hooks, "finite_weights", lambda model: False if len(saved) >= 1 else real_finite(model))
    out = tmp_path / "run"
    train(micro_config("train.save_every=1"), data, out, iters=3, show_progress=False)
    assert saved == [1]  # iterations 2 and 3 had non-finite weights: last.pt stays the good iteration 1
    assert load_checkpoint(out / "last.pt")["iteration"] == 1


@pytest.mark.parametrize("override, key", [
    ("model.backbone_layers=[1,2]", "model.backbone_layers"), ("train.save_every=0", "train.save_every"),
    ("train.log_every=0", "train.log_every"), ("model.height=16", "model.height"), ("train.pos_ids=0", "train.pos_ids"),
    ("model.backbone=resnet9", "model.backbone"), ("model.encoder_dim=4", "model.encoder_dim"),
])
def test_out_of_range_config_values_name_the_key(override, key):
    with pytest.raises(ConfigError, match=rf"{re.escape(key)}=.* is out of range: "):
        load_config("tiny", [override])


def test_config_files_of_the_wrong_kind(tmp_path):
    for name, content, message in [("a.toml", b"\xff\xfe[train]", "not UTF-8"), ("b.json", b"[1, 2]", "holds a list"),
                                   ("c.yaml", b"42\n", "holds a int")]:
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ConfigError, match=message):
            load_config(str(tmp_path / name))


def test_a_checkpoint_without_num_classes_is_one_line(tmp_path):
    save_checkpoint(tmp_path / "x.pt", {"config": {}, "model": {}})
    with pytest.raises(CheckpointError, match="lacks num_classes"):
        load_model(tmp_path / "x.pt")


def test_bad_inputs_of_the_training_verbs_are_one_line(data, tmp_path):
    import pickle

    root = Path(data.split(":", 1)[1])
    garbage, evil = tmp_path / "garbage.pth", tmp_path / "evil.pth"
    garbage.write_bytes(b"not weights at all")
    evil.write_bytes(pickle.dumps({"x": object()}))
    base = ["train", "--config", "tiny", *[a for s in MICRO for a in ("--set", s)], "--data", data,
            "--out", str(tmp_path / "run"), "--iters", "1", "--no-eval", "--no-progress"]
    save_checkpoint(tmp_path / "incomplete.pt", {"config": {}, "model": {}})
    # a split file with bytes that are not UTF-8
    broken = tmp_path / "broken"
    import shutil
    from concurrent.futures import ThreadPoolExecutor

    shutil.copytree(root, broken)
    split = next((broken / "idx").glob("train_visible_*.txt"))
    split.write_bytes(b"\xff\xfe\x00 not text")
    cases = [((*base, "--pretrained", str(garbage)), "not a readable weights file"),
             ((*base, "--pretrained", str(evil)), "not a readable weights file"),
             (("eval", str(tmp_path / "incomplete.pt"), "--data", data, "--device", "foo"), "--device': 'foo'"),
             (("export", str(tmp_path / "incomplete.pt"), "--out", str(tmp_path / "m")), "lacks num_classes"),
             ((*base[:-6], "--data", f"regdb:{broken}", "--out", str(tmp_path / "r2"), "--iters", "1", "--no-eval",
               "--no-progress"), "not UTF-8 text")]
    with ThreadPoolExecutor(2) as pool:  # independent processes, most of each is importing torch: two at a time
        runs = list(pool.map(lambda case: _hicmd(*case[0]), cases))
    for run, (_, pattern) in zip(runs, cases):
        _one_line(run, pattern)


def test_best_pt_follows_the_best_evaluation(tmp_path):
    from hicmd.train.housekeeping import keep_best

    def results(r1: float) -> dict:
        return {"settings": {"v2t": {"r1": r1}}}

    (tmp_path / "last.pt").write_bytes(b"first")
    assert keep_best(tmp_path, results(10.0))
    (tmp_path / "last.pt").unlink()
    (tmp_path / "last.pt").write_bytes(b"second, worse")
    assert not keep_best(tmp_path, results(8.0))
    assert (tmp_path / "best.pt").read_bytes() == b"first"
    (tmp_path / "last.pt").unlink()
    (tmp_path / "last.pt").write_bytes(b"third, better")
    assert keep_best(tmp_path, results(12.5))
    assert (tmp_path / "best.pt").read_bytes() == b"third, better"
    assert json.loads((tmp_path / "best.json").read_text())["r1"] == 12.5


def test_a_checkpoint_from_before_hfl_batch_loads_as_the_batched_run_it_was(tmp_path):

    from hicmd.config import config_to_dict
    from hicmd.presets import PRESETS
    from hicmd.model import HiCMD

    cfg = load_config("tiny", ["train.neg_ids=2", "train.hfl_batch=batched"])
    saved = config_to_dict(cfg)
    del saved["train"]["hfl_batch"]  # written by an older hicmd
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "old.pt", {"config": saved, "num_classes": 4,
                                          "model": HiCMD(cfg.model, 4).state_dict(), "iteration": 1})
    model, loaded = load_model(tmp_path / "old.pt")
    assert loaded.train.hfl_batch == "batched" and loaded.train.neg_ids == 2
    assert PRESETS["paper"].train.hfl_batch == "per_group"
