"""People the model has never seen, on both camera rigs: appearance alone vs appearance + time + self-calibrated
geometry, with the `trained` model of the stream tests (trained on other SynthVI people: universe seed 0) streaming
clips of a universe it never saw (seed 77). One short clip per rig; the thresholds are below what was measured on
the build machine, so they hold on a rebuilt model and fail if the geometry cue stops working."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hicmd.data.synthvi_video import write_clip
from hicmd.runtime.scorecard import score_card

HELD_OUT = list(range(101, 105))


def _stream(model: Path, clip: Path, out: Path, cues: str) -> dict:
    cmd = [sys.executable, "-m", "hicmd", "stream", "--rgb", str(clip / "rgb.mp4"), "--ir", str(clip / "ir.mp4"),
           "--model", str(model), "--backend", "onnxruntime", "--embed-every", "2", "--cues", cues,
           "--detections-rgb", str(clip / "det_rgb.txt"), "--detections-ir", str(clip / "det_ir.txt"),
           "--events", str(out / "events.jsonl"), "--save-tracks", str(out / "tracks")]
    run = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "2"}, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    return score_card(out, clip)


@pytest.mark.slow
@pytest.mark.parametrize("rig", ["bispectrum", "separate"])
def test_geometry_and_time_match_people_appearance_alone_cannot(trained, tmp_path, rig):
    clip = tmp_path / "clip"
    write_clip(clip, HELD_OUT, seed=77, index=0, frames=250, rig=rig)
    alone = _stream(trained / "model", clip, tmp_path / "appearance", "appearance")
    fused = _stream(trained / "model", clip, tmp_path / "geometry", "geometry")
    print(rig, "appearance", alone)
    print(rig, "geometry", fused)
    assert fused["match_positives"] >= 3
    assert fused["match_found"] >= alone["match_found"] + 1  # the cues find people appearance misses
    assert fused["match_found"] / fused["match_positives"] >= 0.6
    assert fused["match_correct"] / max(fused["match_matches"], 1) >= 0.75
    if rig == "bispectrum":  # it calibrated itself, within 5 px of the clip's true homography
        assert fused["calibration_px"] is not None and fused["calibration_px"] <= 5.0, fused
