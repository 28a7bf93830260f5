"""`hicmd demo`: every step is a valid CLI call, and the report gathers what the steps leave behind."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from hicmd.cli import app
from hicmd.walkthrough import DemoPlan, _steps, write_report


@pytest.mark.parametrize("step", _steps(DemoPlan(out=Path("demo-out"))), ids=lambda s: s.args[0])
def test_each_step_is_a_valid_cli_call(step) -> None:
    # --help is eager: click parses (and rejects unknown options) before it prints help and exits 0.
    result = CliRunner().invoke(app, [*step.args, "--help"])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("fresh", [[], ["--fresh"]])
def test_an_out_that_is_a_file_is_one_line(tmp_path: Path, fresh: list[str]) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    result = subprocess.run([sys.executable, "-m", "hicmd", "demo", "--out", str(tmp_path / "notes.txt"), *fresh],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "exists and is not a folder" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_report_collects_metrics_pictures_and_video_frame(tmp_path: Path) -> None:
    (tmp_path / "eval").mkdir()
    setting = {"label": "visible -> thermal", "r1": 12.5, "r5": 30.0, "r10": 41.0, "mAP": 9.25, "mINP": 3.5}
    (tmp_path / "eval" / "metrics.json").write_text(json.dumps({"settings": {"v2t": setting}}))
    cv2.imwrite(str(tmp_path / "eval" / "cmc.png"), np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "run" / "samples").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "run" / "samples" / "iter_0000500.png"), np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "stream").mkdir()
    writer = cv2.VideoWriter(str(tmp_path / "stream" / "annotated.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 32))
    for i in range(6):
        writer.write(np.full((32, 64, 3), 40 * i, np.uint8))
    writer.release()

    report_md, report_html = write_report(DemoPlan(out=tmp_path))
    md = report_md.read_text()
    assert "| v2t | 12.50 | 30.00 | 41.00 | 9.25 | 3.50 |" in md
    assert "![eval/cmc.png](eval/cmc.png)" in md and "run/samples/iter_0000500.png" in md
    assert (tmp_path / "stream" / "frame.png").is_file() and "stream/frame.png" in md
    assert "<img src='eval/cmc.png'" in report_html.read_text()
    assert "Latency" not in md  # no benchmark was run, so the report does not pretend there was one

    # a run that ends in the HFL warm-up has an untrained generator: its grid is noise, so the report says why not
    (tmp_path / "run" / "config.json").write_text(json.dumps({"train": {"warmup_id": 500}}))
    md = write_report(DemoPlan(out=tmp_path))[0].read_text()
    assert "run/samples/iter_0000500.png" not in md and "never trained" in md


def test_a_step_is_reused_only_when_it_finished_with_the_same_command(tmp_path: Path, monkeypatch) -> None:
    import hicmd.walkthrough as walkthrough

    ran: list[str] = []

    def fake_run(step, console):  # the step "runs": it leaves its marker, or fails at the verb named in `fail`
        if step.args[0] == fail:
            raise walkthrough.DemoStepFailed(f"{step.args[0]} failed")
        ran.append(step.args[0])
        step.done.parent.mkdir(parents=True, exist_ok=True)
        step.done.write_text("done")
        return 0.0

    monkeypatch.setattr(walkthrough, "_run", fake_run)
    monkeypatch.setattr(walkthrough, "write_report", lambda plan: (plan.out / "r.md", plan.out / "r.html"))
    verbs = [step.args[0] for step in _steps(DemoPlan(out=tmp_path, bench=False))]
    fail = None
    walkthrough.run_demo(DemoPlan(out=tmp_path, bench=False))
    assert ran == verbs
    ran.clear()
    walkthrough.run_demo(DemoPlan(out=tmp_path, bench=False))
    assert ran == []  # everything finished with the same command lines
    # another recipe: synth is reused, train and everything after it (which read its output) are redone
    walkthrough.run_demo(DemoPlan(out=tmp_path, bench=False, iters=7))
    assert ran == verbs[1:]
    # a run stopped inside export leaves export and the steps after it unreusable, though their markers exist
    ran.clear()
    fail = "export"
    with pytest.raises(walkthrough.DemoStepFailed):
        walkthrough.run_demo(DemoPlan(out=tmp_path, bench=False))
    assert ran == ["train", "eval"]
    ran.clear()
    fail = None
    walkthrough.run_demo(DemoPlan(out=tmp_path, bench=False))
    assert ran == verbs[verbs.index("export"):]
    # a folder from before steps.json (or with it unreadable) reuses nothing
    ran.clear()
    (tmp_path / "steps.json").write_text("{not json")
    walkthrough.run_demo(DemoPlan(out=tmp_path, bench=False))
    assert ran == verbs
