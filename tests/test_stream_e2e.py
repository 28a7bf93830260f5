"""End to end: `run_stream` on synthetic two-camera clips with a fake embedder, scored against ground truth."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from hicmd.runtime.events import validate_event
from hicmd.runtime.matchscore import read_events, score_run
from hicmd.runtime.sources import SourceError
from hicmd.runtime.stream import StreamError, StreamOptions, run_stream

from testkit.stream import FakeEmbedder, Walker, make_clip, tiny_export

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clip"))


def _opts(clip: Path, out: Path, **kw) -> StreamOptions:
    return StreamOptions(rgb=str(clip / "rgb.mp4"), ir=str(clip / "ir.mp4"), detections_rgb=str(clip / "det_rgb.txt"),
                         detections_ir=str(clip / "det_ir.txt"), events=str(out / "events.jsonl"),
                         save_tracks=str(out / "tracks"), **kw)


def test_file_pipeline_matches_ground_truth(clip, tmp_path):
    embedder = FakeEmbedder()
    summary = run_stream(_opts(clip, tmp_path, save=str(tmp_path / "out.mp4")), embedder)
    # every frame of both files processed in order, nothing dropped
    assert summary.frames["rgb"]["processed"] == 120 and summary.frames["ir"]["processed"] == 60
    assert summary.frames["rgb"]["dropped"] == summary.frames["ir"]["dropped"] == 0
    assert summary.pair_skew_ms_p50 == 0.0  # IR frames (5 Hz) land exactly on RGB frames (10 Hz)
    events = read_events(tmp_path / "events.jsonl")
    for event in events:
        validate_event(event)
    score = score_run(tmp_path / "events.jsonl", tmp_path / "tracks", clip / "gt_rgb.txt", clip / "gt_ir.txt")
    assert score.matches >= 5 and score.positives >= 5
    assert score.precision >= 0.9 and score.recall >= 0.7, score
    # a matched pair shares one global id: the older of the two tracks' own ids
    own = {(e["camera"], e["track"]): e["gid"] for e in events if e["event"] == "track_new"}
    for e in (e for e in events if e["event"] == "match"):
        assert e["gid"] == min(own["rgb", e["rgb_track"]], own["ir", e["ir_track"]])
    # every match ends (here: with its tracks), every track ends
    assert summary.matches == summary.matches_lost == sum(e["event"] == "match" for e in events)
    assert sum(e["event"] == "track_end" for e in events) == sum(summary.tracks.values())
    # crops are batched: one call per modality per step, several crops per call, re-embedded every ~8 frames
    calls_rgb = [n for m, n in embedder.calls if m == "rgb"]
    assert max(calls_rgb) >= 3
    rgb_track_frames = sum(1 for _ in open(tmp_path / "tracks" / "rgb.txt"))
    assert rgb_track_frames / 8 <= sum(calls_rgb) <= rgb_track_frames / 8 + 3 * summary.tracks["rgb"]
    # the annotated side-by-side video holds one frame per step
    cap = cv2.VideoCapture(str(tmp_path / "out.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == summary.steps
    assert int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == 640 and int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == 240
    cap.release()


def test_runs_are_deterministic_and_scorer_catches_wrong_matches(clip, tmp_path):
    def strip(path: Path) -> list[dict]:
        return [{k: v for k, v in e.items() if k != "time"} for e in read_events(path)]

    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir(), (tmp_path / "c").mkdir()
    # no periodic stats events: they come every stats_every seconds of wall clock, so where they fall among the
    # others depends on the machine's load (two pytest workers), not on the stream's decisions
    run_stream(_opts(clip, tmp_path / "a", stats_every=3600.0), FakeEmbedder(seed=3))
    run_stream(_opts(clip, tmp_path / "b", stats_every=3600.0), FakeEmbedder(seed=3))
    assert strip(tmp_path / "a" / "events.jsonl") == strip(tmp_path / "b" / "events.jsonl")
    # negative control: IR identities permuted -> confident but wrong matches, and the scorer says so (appearance
    # alone: with geometry, self-calibration finds the right people whatever the embeddings say)
    run_stream(_opts(clip, tmp_path / "c", cues="appearance"), FakeEmbedder(swap_ir=True))
    bad = score_run(tmp_path / "c" / "events.jsonl", tmp_path / "c" / "tracks", clip / "gt_rgb.txt",
                    clip / "gt_ir.txt")
    assert bad.matches >= 3 and bad.precision < 0.5 and bad.recall < 0.5


def _write_frames(folder: Path, clip_file: Path, corrupt_at: dict[int, str]) -> int:
    folder.mkdir()
    cap = cv2.VideoCapture(str(clip_file))
    n = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            return n
        n += 1
        path = folder / f"{n:05d}.png"
        if corrupt_at.get(n) == "garbage":
            path.write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
        elif corrupt_at.get(n) == "size":
            cv2.imwrite(str(path), cv2.resize(frame, (100, 100)))
        else:
            cv2.imwrite(str(path), frame)


def test_a_track_whose_box_passes_to_another_person_is_split(tmp_path):
    """Person 1 leaves where person 2 steps in, in the same lane: IoU alone carries one track over both. Their
    crops tell them apart, so the track is split and each person is matched on their own."""
    clip = make_clip(tmp_path / "clip", people=[Walker(1, 0, 20, 18, 0.0, 5.0), Walker(2, 0, 110, 18, 5.0, 12.0),
                                                Walker(3, 2, 60, 12, 0.0, 12.0)])
    lane0 = {}
    for split in (0.5, 0.0):
        out = tmp_path / f"split{split}"
        out.mkdir()
        run_stream(_opts(clip, out, embed_every=2, split_distance=split), FakeEmbedder())
        events = read_events(out / "events.jsonl")
        lane0[split] = [e for e in events if e["event"] == "track_new" and e["camera"] == "rgb" and e["box"][1] < 30]
        score = score_run(out / "events.jsonl", out / "tracks", clip / "gt_rgb.txt", clip / "gt_ir.txt")
        if split:
            assert score.precision == 1.0 and score.recall == 1.0 and score.positives == 3, score
    assert len(lane0[0.0]) == 1  # without the split: one track for two people ...
    assert len(lane0[0.5]) == 2 and 5.0 <= lane0[0.5][1]["t"] <= 6.0  # ... with it, a new one within a second


def test_folder_sources_corrupt_frames_and_y16(clip, tmp_path):
    n = _write_frames(tmp_path / "rgb", clip / "rgb.mp4", {20: "garbage", 21: "garbage", 50: "size"})
    # IR as 16-bit thermal frames (centi-Kelvin): person grey level g -> 20 + 20 * g / 255 deg C
    (tmp_path / "ir").mkdir()
    cap = cv2.VideoCapture(str(clip / "ir.mp4"))
    k = 0
    while (got := cap.read())[0]:
        k += 1
        celsius = 20.0 + 20.0 * got[1][..., 0].astype(np.float32) / 255.0
        cv2.imwrite(str(tmp_path / "ir" / f"{k:05d}.png"), np.round((celsius + 273.15) * 100).astype(np.uint16))
    assert cv2.imread(str(tmp_path / "ir" / "00001.png"), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    opts = StreamOptions(rgb=str(tmp_path / "rgb"), ir=str(tmp_path / "ir"), fps_rgb=10.0, fps_ir=5.0,
                         detections_rgb=str(clip / "det_rgb.txt"), detections_ir=str(clip / "det_ir.txt"),
                         events=str(tmp_path / "ev.jsonl"), save_tracks=str(tmp_path / "tracks"))
    summary = run_stream(opts, FakeEmbedder())
    assert summary.frames["rgb"]["corrupt"] == 3
    assert summary.frames["rgb"]["processed"] == n - 3
    assert summary.frames["ir"]["corrupt"] == 0
    # the IR frames went through the fixed window back to their grey levels, so the fake embedder still
    # recognises people and matches stay right: frame indices stayed aligned with the detections too
    score = score_run(tmp_path / "ev.jsonl", tmp_path / "tracks", clip / "gt_rgb.txt", clip / "gt_ir.txt")
    assert score.matches >= 3 and score.precision >= 0.9, score


def test_bad_sources_fail_clearly(clip, tmp_path):
    with pytest.raises(SourceError, match="unknown source"):
        run_stream(StreamOptions(rgb=str(tmp_path / "nope.mp4"), ir=str(clip / "ir.mp4")), FakeEmbedder())
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(os.urandom(2048))
    with pytest.raises(SourceError, match="cannot open"):
        run_stream(StreamOptions(rgb=str(junk), ir=str(clip / "ir.mp4"), events=str(tmp_path / "e")),
                   FakeEmbedder())
    # the CLI turns it into one red line and exit code 2 (the source is checked before the model is loaded)
    proc = subprocess.run([sys.executable, "-m", "hicmd", "stream", "--rgb", "ftp://x", "--ir", "cam0",
                           "--model", str(tmp_path)], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert proc.returncode == 2 and "unknown source" in proc.stderr and "Traceback" not in proc.stderr
    with pytest.raises(StreamError, match="--split-distance"):
        run_stream(_opts(clip, tmp_path, split_distance=3.0), FakeEmbedder())


class _InterruptingDetector:
    def __init__(self, det, at: int) -> None:
        self.det, self.at = det, at

    def detect(self, image, index):
        if index == self.at:
            raise KeyboardInterrupt  # what Ctrl-C does to the main thread
        return self.det.detect(image, index)


def test_ctrl_c_ends_cleanly_with_summary(clip, tmp_path):
    from hicmd.runtime.detect import FileDetections

    detectors = {"rgb": _InterruptingDetector(FileDetections(clip / "det_rgb.txt"), 60),
                 "ir": FileDetections(clip / "det_ir.txt")}
    summary = run_stream(_opts(clip, tmp_path), FakeEmbedder(), detectors=detectors)
    assert summary.interrupted and 55 <= summary.frames["rgb"]["processed"] <= 61
    events = read_events(tmp_path / "events.jsonl")
    assert sum(e["event"] == "track_end" for e in events) == sum(e["event"] == "track_new" for e in events)
    import threading

    assert not [t for t in threading.enumerate() if t.name.startswith("capture-")]


def test_realtime_file_playback_and_max_frames(clip, tmp_path):
    summary = run_stream(_opts(clip, tmp_path, realtime=True, max_frames=25, stats_every=0.5), FakeEmbedder())
    assert summary.steps == 25
    assert 1.5 < summary.duration_s < 6  # paced at 10 fps: 25 steps cover ~2.5 s of video
    events = read_events(tmp_path / "events.jsonl")
    stats = [e for e in events if e["event"] == "stats"]
    assert stats, "a stats line every stats_every seconds"
    last = stats[-1]
    assert 5 < last["cameras"]["rgb"]["capture_fps"] < 15
    assert {"capture", "detect", "embed", "match"} <= set(last["stages"])
    assert all({"p50", "p99"} <= set(v) for v in last["stages"].values())


def test_gallery_enrol_then_name(tmp_path):
    clip = make_clip(tmp_path / "one", seconds=4.0, people=[Walker(2, 1, 40, 20, 0.0, 4.0)])
    gallery = tmp_path / "gallery"
    run_stream(_opts(clip, tmp_path, gallery=str(gallery), enroll="carol", enroll_max=3), FakeEmbedder())
    files = sorted((gallery / "carol").iterdir())
    assert len(files) == 6 and {f.name.split("_")[0] for f in files} == {"rgb", "ir"}
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
    assert stat.S_IMODE((gallery / "carol").stat().st_mode) == 0o700
    (tmp_path / "second").mkdir()
    run_stream(_opts(clip, tmp_path / "second", gallery=str(gallery)), FakeEmbedder(seed=5))
    matches = [e for e in read_events(tmp_path / "second" / "events.jsonl") if e["event"] == "match"]
    assert matches and all(e["name"] == "carol" for e in matches)


def test_run_stream_never_imports_torch(clip, tmp_path):
    code = f"""
import sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from testkit.stream import FakeEmbedder
from hicmd.runtime.stream import StreamOptions, run_stream
clip = {str(clip)!r}
opts = StreamOptions(rgb=clip + '/rgb.mp4', ir=clip + '/ir.mp4', detections_rgb=clip + '/det_rgb.txt',
                     detections_ir=clip + '/det_ir.txt', events={str(tmp_path / 'e.jsonl')!r},
                     save={str(tmp_path / 'o.mp4')!r})
s = run_stream(opts, FakeEmbedder())
assert s.steps == 120, s.steps
import hicmd.runtime.detect, hicmd.runtime.gallery, hicmd.runtime.matchscore
print('torch' in sys.modules)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"
    assert json.loads(Path(tmp_path / "e.jsonl").read_text().splitlines()[0])["event"] == "track_new"


def test_cli_stream_end_to_end_with_an_onnx_embedder(clip, tmp_path):
    model = tiny_export(tmp_path / "export")
    proc = subprocess.run(
        [sys.executable, "-m", "hicmd", "stream", "--rgb", str(clip / "rgb.mp4"), "--ir", str(clip / "ir.mp4"),
         "--model", str(model), "--backend", "onnxruntime", "--detections-rgb", str(clip / "det_rgb.txt"),
         "--detections-ir", str(clip / "det_ir.txt"), "--events", str(tmp_path / "ev.jsonl"),
         "--save", str(tmp_path / "out.mp4"), "--max-frames", "40", "--mirror"],
        capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert "mirror images on: the model's gates were measured without them" in proc.stderr  # this model says off
    summary = json.loads(proc.stderr.strip().splitlines()[-1])["summary"]
    assert summary["steps"] == 40 and summary["tracks"]["rgb"] >= 3
    events = read_events(tmp_path / "ev.jsonl")
    assert {"track_new", "track_end"} <= {e["event"] for e in events}
    assert (tmp_path / "out.mp4").stat().st_size > 0
    # --show on the headless wheel: one clear line, exit 2
    proc = subprocess.run([sys.executable, "-m", "hicmd", "stream", "--rgb", str(clip / "rgb.mp4"), "--ir",
                           str(clip / "ir.mp4"), "--model", str(model), "--show"],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    from hicmd.runtime.sources import gui_available

    if not gui_available():
        assert proc.returncode == 2 and "GUI" in proc.stderr and "Traceback" not in proc.stderr
