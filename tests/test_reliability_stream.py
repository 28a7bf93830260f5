"""Security and nothing-lost promises of `hicmd stream` and of a model folder (issue: reliability and security).

Credentials never reach any output; a manifest cannot point outside its folder or run a swapped graph; SIGTERM
finishes the recording like Ctrl-C; an events file is only touched once the sources are up; a gallery folder that
exists keeps its mode.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from hicmd.runtime import stream as stream_module
from hicmd.runtime.backends import BackendError, open_backend
from hicmd.runtime.manifest import ManifestError, load_manifest
from hicmd.runtime.sources import open_source, redact
from hicmd.runtime.stream import StreamError, StreamOptions, run_stream

from testkit.cli import hicmd
from testkit.stream import FakeEmbedder, make_clip, tiny_export

REPO = Path(__file__).resolve().parents[1]
PASSWORD = "S3cretPW"


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clip"), seconds=6.0)


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return tiny_export(tmp_path_factory.mktemp("model") / "export")


# ---------------------------------------------------------------------------------------------- credentials


@pytest.mark.parametrize("text, shown", [
    ("rtsp://admin:S3cretPW@10.0.0.5:554/main", "rtsp://***@10.0.0.5:554/main"),
    ("http://cam.local/mjpg?user=admin&password=S3cretPW", "http://cam.local/mjpg?user=admin&password=***"),
    ("gst:rtspsrc location=rtsp://u:S3cretPW@h/x user-pw=S3cretPW ! appsink", "gst:rtspsrc location=rtsp://***@h/x "
     "user-pw=*** ! appsink"),
    ("cam0", "cam0"),
    # FFmpeg takes userinfo up to the last '@': a password may hold '@' or '/' unescaped
    ("rtsp://admin:P@ss@10.0.0.5/main", "rtsp://***@10.0.0.5/main"),
    ("rtsp://admin:S3cret/PW@10.0.0.5/main", "rtsp://***@10.0.0.5/main"),
    # a mistyped or missing scheme is echoed back in "unknown source": still no password
    ("rtsp:/admin:S3cretPW@10.0.0.5/main", "rtsp:/***@10.0.0.5/main"),
    ("rtsp//admin:S3cretPW@10.0.0.5/main", "rtsp//***@10.0.0.5/main"),
    ("admin:S3cretPW@10.0.0.5:554/main", "***@10.0.0.5:554/main"),
    ("error: cannot open 'rtsp://admin:S3cretPW@h/x' (network)", "error: cannot open 'rtsp://***@h/x' (network)"),
    ("/data/clip@2/rgb.mp4", "/data/clip@2/rgb.mp4"),  # a file name is not a credential
])
def test_redact_hides_userinfo_and_password_parameters(text, shown):
    assert redact(text) == shown


def test_a_rejected_triton_url_is_shown_without_its_password():
    from hicmd.runtime.backends.base import BackendError
    from hicmd.runtime.backends.triton import parse_triton_url

    with pytest.raises(BackendError) as caught:
        parse_triton_url(f"http://admin:{PASSWORD}@10.0.0.2:8001")
    assert PASSWORD not in str(caught.value) and "***@10.0.0.2" in str(caught.value)


def test_cli_never_prints_the_camera_password(clip, model):
    proc = hicmd("stream", "--rgb", f"rtsp://admin:{PASSWORD}@127.0.0.1:1/main", "--ir", str(clip / "ir.mp4"),
                 "--model", str(model))
    assert proc.returncode == 2, proc.stderr
    assert "rtsp://***@127.0.0.1:1/main" in proc.stderr
    assert PASSWORD not in proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("error: cannot open 'rtsp://***@127.0.0.1:1/main'"), proc.stderr
    # and no OpenCV / FFmpeg chatter around it (it can echo the URL too)
    assert not [line for line in lines if "WARN" in line or "FFMPEG" in line or "@ 0x" in line], proc.stderr


class _Flaky:
    """A live network reader (the clip's frames) that goes silent for a while: source_down, then source_up."""

    def __init__(self, reader, silent_from: int, silent_s: float) -> None:
        self.reader, self.fps, self.n = reader, reader.fps, 0
        self.silent_from, self.silent_s, self.silent_until = silent_from, silent_s, None

    def read(self):
        self.n += 1
        if self.n == self.silent_from:
            self.silent_until = time.monotonic() + self.silent_s
        if self.silent_until and time.monotonic() < self.silent_until:
            time.sleep(0.05)
            return None
        time.sleep(0.02)
        return self.reader.read()

    def close(self) -> None:
        self.reader.close()


def test_no_output_of_a_run_with_a_credentialed_source_holds_the_password(clip, tmp_path, monkeypatch, capsys):
    url = f"http://admin:{PASSWORD}@127.0.0.1:9/cam.mjpg?password={PASSWORD}"

    def fake_open(spec, thermal=False, folder_fps=30.0):
        if spec.kind == "network":  # the 'camera' serves the clip's RGB frames, with an outage
            return _Flaky(open_source(stream_module.parse_source(str(clip / "rgb.mp4"))), 15, 2.2)
        return open_source(spec, thermal=thermal, folder_fps=folder_fps)

    monkeypatch.setattr(stream_module, "open_source", fake_open)
    out = tmp_path / "out"
    opts = StreamOptions(rgb=url, ir=str(clip / "ir.mp4"), detections_rgb=str(clip / "det_rgb.txt"),
                         detections_ir=str(clip / "det_ir.txt"), events=str(out / "events.jsonl"),
                         save=str(out / "video.mp4"), save_tracks=str(out / "tracks"), max_frames=60, stats_every=0.5)
    out.mkdir()
    summary = run_stream(opts, FakeEmbedder())
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    kinds = {e["event"] for e in events}
    assert {"source_down", "source_up"} <= kinds, kinds  # the outage was reported, with the source named
    assert all(e["source"].startswith("http://***@127.0.0.1:9/") for e in events if e["event"].startswith("source"))
    captured = capsys.readouterr()
    texts = [captured.out, captured.err, json.dumps(summary.to_dict()), repr(opts)]
    for path in out.rglob("*"):
        if path.is_file():
            texts.append(path.read_bytes().decode("latin-1"))
    leaks = [t[:80] for t in texts if PASSWORD in t]
    assert not leaks or leaks == [repr(opts)[:80]], leaks  # only the caller's own options object holds it


# ---------------------------------------------------------------------------------------------- model folder


def _rewrite(folder: Path, edit) -> None:
    data = json.loads((folder / "manifest.json").read_text())
    edit(data)
    (folder / "manifest.json").write_text(json.dumps(data))


@pytest.mark.parametrize("name", ["../../../../etc/passwd", "/etc/passwd", "sub/../../outside.onnx", "link.onnx"])
def test_a_manifest_cannot_name_files_outside_its_folder(tmp_path, name):
    folder = tiny_export(tmp_path / "m")
    (tmp_path / "outside.onnx").write_bytes((folder / "rgb.onnx").read_bytes())
    (folder / "link.onnx").symlink_to(tmp_path / "outside.onnx")

    def edit(data):
        data["artifacts"][0]["file"] = name

    _rewrite(folder, edit)
    with pytest.raises(ManifestError, match="outside the model folder|relative paths inside"):
        load_manifest(folder)


def test_a_swapped_graph_is_refused_by_its_hash(tmp_path, clip):
    folder = tiny_export(tmp_path / "m")
    (folder / "rgb.onnx").write_bytes((folder / "ir.onnx").read_bytes() + b"\0")  # same graph, other bytes
    manifest = load_manifest(folder)
    with pytest.raises(BackendError, match="rgb.onnx does not match the sha256"):
        open_backend(manifest, "embedder", "rgb", backend="onnxruntime", device="cpu")
    open_backend(manifest, "embedder", "ir", backend="onnxruntime", device="cpu").close()  # untouched: fine
    proc = hicmd("stream", "--rgb", str(clip / "rgb.mp4"), "--ir", str(clip / "ir.mp4"), "--model", str(folder))
    assert proc.returncode == 2 and "rgb.onnx does not match the sha256" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("content, message", [
    (b"[1, 2, 3]", "holds a JSON list"),
    (b"\x80\x03ctorch\n", "binary, not UTF-8"),
])
def test_a_manifest_of_the_wrong_kind_is_one_line(tmp_path, clip, content, message):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "manifest.json").write_bytes(content)
    image = tmp_path / "person.png"
    cv2.imwrite(str(image), np.full((64, 32, 3), 90, np.uint8))
    for verb in (["stream", "--rgb", str(clip / "rgb.mp4"), "--ir", str(clip / "ir.mp4")],
                 ["translate", "--src", str(image), "--ref", str(image), "--out", str(tmp_path / "x.png")],
                 ["bench", "--quick"]):
        proc = hicmd(*verb, "--model", str(folder))
        assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_a_checkpoint_given_as_model_says_what_to_do(tmp_path, clip):
    ckpt = tmp_path / "last.pt"
    ckpt.write_bytes(b"PK\x03\x04\x80\x02 a torch zip")
    proc = hicmd("stream", "--rgb", str(clip / "rgb.mp4"), "--ir", str(clip / "ir.mp4"), "--model", str(ckpt))
    assert proc.returncode == 2 and "hicmd export" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


# ---------------------------------------------------------------------------------------------- outputs


def test_sigterm_finishes_video_tracks_events_and_summary(clip, model, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "hicmd", "stream", "--rgb", str(clip / "rgb.mp4"), "--ir", str(clip / "ir.mp4"),
         "--model", str(model), "--backend", "onnxruntime", "--detections-rgb", str(clip / "det_rgb.txt"),
         "--detections-ir", str(clip / "det_ir.txt"), "--realtime", "--loop", "--save", str(out / "video.mp4"),
         "--save-tracks", str(out / "tracks"), "--events", str(out / "events.jsonl")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # let it run until it has tracked people for a while
        if (out / "events.jsonl").exists() and (out / "events.jsonl").read_text().count('"track_new"') >= 3:
            break
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert "SIGTERM" in stderr and json.loads(stderr.strip().splitlines()[-1])["summary"]["interrupted"]
    cap = cv2.VideoCapture(str(out / "video.mp4"))  # a finished mp4 (its index written) opens and has frames
    assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) > 5
    cap.release()
    assert not list(out.glob(".*partial*"))
    for cam in ("rgb", "ir"):
        assert (out / "tracks" / f"{cam}.txt").stat().st_size > 0
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    new = sum(e["event"] == "track_new" for e in events)
    assert new >= 3 and sum(e["event"] == "track_end" for e in events) == new


def test_events_file_is_untouched_by_a_run_that_fails_and_appended_otherwise(clip, model, tmp_path):
    events = tmp_path / "events.jsonl"
    events.write_text('{"event": "earlier run"}\n')
    proc = hicmd("stream", "--rgb", str(tmp_path / "no-such.mp4"), "--ir", str(clip / "ir.mp4"),
                 "--model", str(model), "--events", str(events))
    assert proc.returncode == 2
    assert events.read_text() == '{"event": "earlier run"}\n'
    run = ["stream", "--rgb", str(clip / "rgb.mp4"), "--ir", str(clip / "ir.mp4"), "--model", str(model),
           "--detections-rgb", str(clip / "det_rgb.txt"), "--detections-ir", str(clip / "det_ir.txt"),
           "--max-frames", "10", "--events", str(events)]
    assert hicmd(*run).returncode == 0
    lines = events.read_text().splitlines()
    assert lines[0] == '{"event": "earlier run"}' and len(lines) > 1
    assert hicmd(*run, "--overwrite").returncode == 0
    assert "earlier run" not in events.read_text()


def test_fps_zero_is_refused(clip):
    with pytest.raises(StreamError, match="--fps-rgb 0"):
        StreamOptions(rgb=str(clip / "rgb.mp4"), ir=str(clip / "ir.mp4"), fps_rgb=0)


def test_an_existing_gallery_folder_keeps_its_mode(tmp_path, capsys):
    from hicmd.runtime.gallery import save_crop

    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    crop = np.full((32, 16, 3), 120, np.uint8)
    path = save_crop(shared, "carol", crop, "rgb", "a")
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777  # never changed
    assert "open to other users" in capsys.readouterr().err
    assert stat.S_IMODE((shared / "carol").stat().st_mode) == 0o700  # created here: private
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
