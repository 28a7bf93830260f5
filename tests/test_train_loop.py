"""The training loop: outputs, bit-exact resume in a fresh process, config mismatch, non-finite guards, CLI errors."""

from __future__ import annotations

import csv
import math
import os
import subprocess
import sys

import pytest
import torch
from typer.testing import CliRunner

import hicmd.losses
from hicmd.cli import app
from hicmd.errors import HicmdError
from hicmd.checkpoint import load_checkpoint
from hicmd.train.loop import TrainingStopped, train

from testkit.train import MICRO, micro_config, write_synth


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> str:
    return f"regdb:{write_synth(tmp_path_factory.mktemp('synth'))}"


def _same(a: object, b: object) -> bool:
    """Deep equality of checkpoint pieces (tensors compared bit for bit)."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def test_resume_in_a_fresh_process_is_bit_exact(data, tmp_path):
    cfg = micro_config()
    straight = train(cfg, data, tmp_path / "straight", iters=2, show_progress=False)
    assert straight.trained == 2 and straight.skipped == 0
    half = tmp_path / "half"
    train(cfg, data, half, iters=1, show_progress=False)
    sets = [a for s in MICRO for a in ("--set", s)]
    cmd = [sys.executable, "-m", "hicmd", "train", "--config", "tiny", *sets, "--data", data, "--out", str(half),
           "--iters", "2", "--resume", str(half / "last.pt"), "--no-eval", "--no-progress"]
    # the same intra-op thread count as this process's run: float sums are only bit-equal in the same order
    threads = str(torch.get_num_threads())
    run = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": threads})
    assert run.returncode == 0, run.stderr[-2000:]

    a, b = load_checkpoint(tmp_path / "straight" / "last.pt"), load_checkpoint(half / "last.pt")
    assert a["iteration"] == b["iteration"] == 2
    assert _same(a["model"], b["model"])
    assert _same(a["trainer"], b["trainer"]) and _same(a["ranks"], b["ranks"])
    # the run folder holds what a person looks at
    rows = list(csv.DictReader((half / "log.csv").open()))
    assert [r["iteration"] for r in rows] == ["1", "2"]
    assert {"G_lr", "ID_lr", "D_lr", "alpha", "CE", "TRIP", "G_adv", "D_a"} <= set(rows[0])
    # the process's CPU seconds beside the wall seconds (benchmarks/edge_vs_tiny.py budgets by them)
    cpu = [float(r["cpu_time"]) for r in csv.DictReader((tmp_path / "straight" / "log.csv").open())]
    assert len(cpu) == 2 and 0 < cpu[0] < cpu[1]
    assert (half / "checkpoints" / "iter_0000001.pt").is_file() and (half / "samples" / "iter_0000002.png").is_file()

    # a checkpoint from another config is refused with the differing fields named (length may change)
    argv = ["train", "--config", "tiny", *sets, "--set", "model.mlp_dim=16", "--set", "train.gamma=0.3",
            "--data", data, "--out", str(half), "--iters", "3", "--resume", str(half / "last.pt"), "--no-eval"]
    result = CliRunner().invoke(app, argv)
    assert isinstance(result.exception, HicmdError), result.output
    message = str(result.exception)
    assert "model.mlp_dim: checkpoint 32 != config 16" in message and "train.gamma" in message
    assert "train.iters" not in message


def test_shared_warmup_checkpoints_hold_ir_encoders_copied_from_rgb(data, tmp_path):
    cfg = micro_config("train.warmup_id=5", "train.warmup_shared=true")
    train(cfg, data, tmp_path, iters=2, show_progress=False)  # stops inside the warm-up
    model = load_checkpoint(tmp_path / "last.pt")["model"]
    ir_keys = [k for k in model if k.startswith(("prototype.ir.", "attribute.ir."))]
    assert ir_keys and all(torch.equal(model[k], model[k.replace(".ir.", ".rgb.", 1)]) for k in ir_keys)


def test_non_finite_steps_are_skipped_then_training_stops(data, tmp_path, monkeypatch):
    calls = {"n": 0}
    real = hicmd.losses.code_l2_pull

    def nan_from_second_step(*codes):  # called once per G step
        calls["n"] += 1
        value = real(*codes)
        return value * float("nan") if calls["n"] >= 2 else value

    monkeypatch.setattr(hicmd.losses, "code_l2_pull", nan_from_second_step)
    cfg = micro_config("train.max_nonfinite=2", "train.save_every=1")
    out = tmp_path / "run"
    with pytest.raises(TrainingStopped, match=r"iteration 3.*iter_0000001\.pt"):
        train(cfg, data, out, iters=5, show_progress=False)
    rows = list(csv.DictReader((out / "log.csv").open()))
    assert [(r["iteration"], r["G_skipped"], r["skipped"]) for r in rows] == [("1", "0.0", "0"), ("2", "1.0", "1")]
    # the skipped step left the weights alone: iteration 2 was never saved, last.pt is still iteration 1
    assert load_checkpoint(out / "last.pt")["iteration"] == 1
    assert not (out / "checkpoints" / "iter_0000002.pt").exists()


def test_a_finite_loss_with_non_finite_gradients_is_skipped_too(data, tmp_path, monkeypatch):
    # The tiny recipe's ID-PIG phase after a long warm-up once took such a step: finite loss, NaN gradients, and
    # every weight NaN from then on. sqrt at 0 is that step in small: value 0, gradient inf * 0 = NaN.
    calls = {"n": 0}
    real = hicmd.losses.code_l2_pull

    def nan_gradient_from_second_step(*codes):
        calls["n"] += 1
        value = real(*codes)
        return value + torch.sqrt((codes[0] - codes[0].detach()).sum() * 0) if calls["n"] >= 2 else value

    monkeypatch.setattr(hicmd.losses, "code_l2_pull", nan_gradient_from_second_step)
    out = tmp_path / "run"
    sets = [a for s in [*MICRO, "train.max_nonfinite=5", "train.save_every=1"] for a in ("--set", s)]
    result = CliRunner().invoke(app, ["train", "--config", "tiny", *sets, "--data", data, "--out", str(out),
                                      "--iters", "3", "--no-eval", "--no-progress"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((out / "log.csv").open()))
    assert all(math.isfinite(float(r["TOT_G"])) for r in rows)  # the loss itself stayed finite throughout
    assert [r["G_skipped"] for r in rows] == ["0.0", "1.0", "1.0"]
    # the weights never took the NaN step: last.pt is iteration 1, and the command says so
    assert load_checkpoint(out / "last.pt")["iteration"] == 1
    assert "holds iteration 1, not 3" in " ".join(result.output.split())


@pytest.mark.parametrize(
    "args, message",
    [
        (["--data", "nowhere:x"], "must look like regdb:PATH"),
        (["--data", "regdb:/does/not/exist"], "is not a folder"),
        (["--config", "nope"], "does not exist"),
        (["--set", "train.nope=1"], "unknown key"),
        (["--set", "train.pos_ids=many"], "expected an integer"),
        (["--set", "train.amp=fp8"], "train.amp='fp8' is out of range: use one of none, bf16, fp16"),
        (["--set", "train.device=tpu"], "use auto, cpu, cuda or cuda:N"),
        (["--resume", "/no/such.pt"], "not found"),
        (["--pretrained", "/no/such.pth"], "not found"),
    ],
)
def test_cli_errors_are_one_line_user_errors(data, tmp_path, args, message):
    base = {"--data": data, "--config": "tiny", "--out": str(tmp_path / "o")}
    for flag, value in zip(args[::2], args[1::2]):
        base[flag] = value
    argv = ["train", *[x for kv in base.items() for x in kv], "--iters", "1", "--no-eval", "--no-progress"]
    result = CliRunner().invoke(app, argv)
    assert isinstance(result.exception, HicmdError), result.output
    assert message in str(result.exception) and "\n" not in str(result.exception)


def test_an_evaluated_run_reports_its_results_and_links_best_pt(data, tmp_path):
    summary = train(micro_config(), data, tmp_path, iters=1, evaluate=True, show_progress=False)
    assert summary.eval is not None and (tmp_path / "eval.json").is_file()
    assert summary.results_png == tmp_path / "results.png" and summary.results_png.is_file()
    # best.pt follows the evaluated checkpoint (best.json names it and its score)
    assert (tmp_path / "best.pt").samefile(tmp_path / "last.pt") and (tmp_path / "best.json").is_file()
