"""`hicmd synth` end to end: the RegDB layout it writes, its summary line and its user errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from hicmd.data import load_split

HICMD = [sys.executable, "-m", "hicmd"]


def _run(*args):
    return subprocess.run([*HICMD, "synth", *args], capture_output=True, text=True, timeout=120)


def test_synth_command_writes_regdb_and_videos(tmp_path):
    out = tmp_path / "sv"
    result = _run("--out", str(out), "--ids", "6", "--per-id", "2", "--size", "64x32", "--trials", "2",
                  "--videos", "--clips", "1", "--frames", "12")
    assert result.returncode == 0, result.stderr
    assert "6 ids x 2 RGB + 2 IR = 24 images at 64x32" in result.stdout and "images/s" in result.stdout
    assert len(load_split("regdb", out, "train", trial=2)) == 12
    assert len(load_split("regdb", out, "query", trial=1)) == 6
    assert (out / "videos" / "clip01" / "rgb.mp4").stat().st_size > 0


def test_synth_command_user_errors(tmp_path):
    for args, text in ((["--size", "12x3"], "--size"), (["--ids", "1"], "--ids"), (["--per-id", "0"], "--per-id"),
                       (["--ids", "4", "--videos"], "--ids 6")):
        result = _run("--out", str(tmp_path / "x"), *args)
        assert result.returncode == 2 and "error:" in result.stderr and text in result.stderr
        assert "Traceback" not in result.stderr
    (tmp_path / "file").write_text("")
    result = _run("--out", str(tmp_path / "file"))
    assert result.returncode == 2 and "not a folder" in result.stderr
    assert not Path(tmp_path / "x").exists()  # nothing written on bad options
