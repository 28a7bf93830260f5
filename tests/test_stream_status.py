"""`hicmd stream` on a terminal shows a live status line built from the stats events (run under a pseudo-terminal
with `script`); elsewhere the stats events on stdout are the progress."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from testkit.graphs import make_export
from testkit.stream import make_clip


@pytest.mark.skipif(shutil.which("script") is None, reason="needs util-linux 'script' for a pseudo-terminal")
def test_live_status_line_on_a_terminal_and_stats_events_otherwise(tmp_path):
    make_export(tmp_path / "model")
    clip = make_clip(tmp_path / "clip", seconds=3.0)
    args = [sys.executable, "-m", "hicmd", "stream", "--rgb", str(clip / "rgb.mp4"), "--ir", str(clip / "ir.mp4"),
            "--model", str(tmp_path / "model"), "--detections-rgb", str(clip / "det_rgb.txt"), "--detections-ir",
            str(clip / "det_ir.txt"), "--realtime", "--stats-every", "0.5"]
    piped = subprocess.run([*args, "--events", str(tmp_path / "ev.jsonl")], capture_output=True, text=True,
                           timeout=120)
    assert piped.returncode == 0, piped.stderr
    assert "processed/captured" not in piped.stderr  # no terminal: no status line
    stats = [json.loads(x) for x in (tmp_path / "ev.jsonl").read_text().splitlines() if '"stats"' in x]
    assert len(stats) >= 3
    command = " ".join(f"'{a}'" for a in args) + " > /dev/null"  # stdout (events) away; the status goes to stderr
    tty = subprocess.run(["script", "-qec", command, "/dev/null"], capture_output=True, text=True, timeout=120)
    assert tty.returncode == 0, tty.stdout[-2000:]
    assert "processed/captured" in tty.stdout and "matches" in tty.stdout, tty.stdout[-2000:]
