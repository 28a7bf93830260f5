"""End to end with a real model: the fixture trains the `tiny` Hi-CMD on SynthVI, exports it to ONNX, and
`hicmd stream` (ONNX Runtime, CPU) runs on SynthVI clips with their noisy det.txt; matches are scored against
gt.txt. The trained model is cached in pytest's cache folder under a key of the sources and settings that shape
it, so only the first run (and every fresh clone, e.g. CI) pays for the training.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hicmd.runtime.matchscore import read_events, score_run

REPO = Path(__file__).resolve().parents[1]
IDS = 20  # SynthVI identities: 10 train the model, the clips walk 3-4 of them
ITERS = 300  # shared HFL warm-up iterations (~3.5 it/s on 2 cores) + ID-PIG iterations below
ID_PIG_ITERS = 10
SETTINGS = [f"train.iters={ITERS + ID_PIG_ITERS}", f"train.warmup_id={ITERS}", "train.step_size=250", "train.pos_ids=6", "train.neg_ids=4",
            "train.save_every=100000", "train.sample_every=100000", "train.log_every=50"]
SHAPING_SOURCES = ["hicmd/config.py", "hicmd/model", "hicmd/train", "hicmd/data", "hicmd/losses.py", "export"]


def _cache_key() -> str:
    digest = hashlib.sha1(json.dumps([IDS, SETTINGS]).encode())
    for entry in SHAPING_SOURCES:
        path = REPO / entry
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            digest.update(file.relative_to(REPO).as_posix().encode() + file.read_bytes())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="session")
def trained(request: pytest.FixtureRequest) -> Path:
    """Folder with model/ (ONNX + manifest.json) and videos/ (SynthVI clips of training identities)."""
    from hicmd.config import load_config
    from hicmd.data.synthvi_video import write_videos
    from hicmd.data.synthvi_write import split_ids, write_regdb
    from hicmd.export.pipeline import ExportOptions, run_export
    from hicmd.train.loop import train

    root = Path(request.config.cache.mkdir(f"hicmd-stream-model-{_cache_key()}"))
    if (root / "done").is_file():
        return root
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    write_regdb(root / "data", IDS, images_per_modality=10, seed=0)
    summary = train(load_config("tiny", SETTINGS), f"regdb:{root / 'data'}", root / "run", show_progress=False)
    assert summary["skipped"] == 0
    result = run_export(root / "run" / "last.pt", root / "model", ExportOptions(crops=16))
    assert result.ok, result
    train_ids, _ = split_ids(IDS, seed=0, trial=1)
    write_videos(root / "videos", train_ids, seed=0, clips=2, frames=120)
    (root / "done").write_text("ok\n")
    return root


def test_stream_with_a_trained_model_matches_rgb_and_ir_people(trained, tmp_path):
    """The issue's command on both clips (one with IR at half the frame rate): precision >= 0.9, recall >= 0.7.

    The clips walk identities the model was trained on (other renderings: new poses, scenes and cameras). A test
    budget of a few CPU minutes does not buy held-out cross-modality accuracy good enough for this; the held-out
    figure is `hicmd train ... --eval`'s (see README), and this test checks that the runtime turns a real
    network's embeddings into correct, confirmed matches.
    """
    clips = sorted(p for p in (trained / "videos").iterdir() if p.is_dir())
    assert len(clips) == 2
    totals = {"matches": 0, "true": 0, "positives": 0, "found": 0}
    for clip in clips:
        out = tmp_path / clip.name
        cmd = [sys.executable, "-m", "hicmd", "stream", "--rgb", str(clip / "rgb.mp4"), "--ir", str(clip / "ir.mp4"),
               "--model", str(trained / "model"), "--backend", "onnxruntime",
               "--detections-rgb", str(clip / "det_rgb.txt"), "--detections-ir", str(clip / "det_ir.txt"),
               "--save", str(out / "out.mp4"), "--events", str(out / "events.jsonl"),
               "--save-tracks", str(out / "tracks")]
        run = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "2"},
                             timeout=300)
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
        assert "stats" in {e["event"] for e in read_events(out / "events.jsonl")}
        assert (out / "out.mp4").stat().st_size > 10_000
        score = score_run(out / "events.jsonl", out / "tracks", clip / "gt_rgb.txt", clip / "gt_ir.txt")
        print(clip.name, score)
        totals["matches"] += score.matches
        totals["true"] += score.correct
        totals["positives"] += score.positives
        totals["found"] += score.found
    assert totals["matches"] >= 3 and totals["positives"] >= 3, totals
    assert totals["true"] / totals["matches"] >= 0.9, totals
    assert totals["found"] / totals["positives"] >= 0.7, totals
