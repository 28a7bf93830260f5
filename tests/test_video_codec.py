"""`--save` writes a video a browser plays: VP9 (or H.264) in MP4/WebM, checked with ffprobe, not MPEG-4 Part 2."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from testkit.stream import FakeEmbedder, make_clip

from hicmd.runtime.annotate import VideoSink  # noqa: E402
from hicmd.runtime.stream import StreamError, StreamOptions, run_stream  # noqa: E402

BROWSER_CODECS = {"vp9", "h264", "vp8"}
pytestmark = pytest.mark.skipif(shutil.which("ffprobe") is None, reason="ffprobe missing (apt-get install ffmpeg)")


def probe(path: Path) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                          "stream=codec_name,width,height,nb_frames:format=format_name", "-of", "json", str(path)],
                         capture_output=True, text=True, check=True).stdout
    data = json.loads(out)
    return {**data["streams"][0], "format": data["format"]["format_name"]}


@pytest.mark.parametrize("suffix, container", [(".mp4", "mp4"), (".webm", "webm")])
def test_video_sink_writes_a_browser_codec(tmp_path, suffix, container):
    sink = VideoSink(tmp_path / f"v{suffix}", 10.0)
    for i in range(12):
        sink.write(np.full((61, 81, 3), 20 * i % 255, np.uint8))  # odd size: trimmed to even
    sink.close()
    info = probe(tmp_path / f"v{suffix}")
    assert info["codec_name"] in BROWSER_CODECS, info
    assert container in info["format"] and (info["width"], info["height"]) == (80, 60)
    assert sink.codec != "mp4v"


def test_stream_save_is_vp9_or_h264_and_readable(tmp_path):
    clip = make_clip(tmp_path / "clip", seconds=2.0)
    opts = StreamOptions(rgb=str(clip / "rgb.mp4"), ir=str(clip / "ir.mp4"), detections_rgb=str(clip / "det_rgb.txt"),
                         detections_ir=str(clip / "det_ir.txt"), events=str(tmp_path / "ev.jsonl"),
                         save=str(tmp_path / "out.mp4"))
    summary = run_stream(opts, FakeEmbedder())
    info = probe(tmp_path / "out.mp4")
    assert info["codec_name"] in BROWSER_CODECS, info
    cap = cv2.VideoCapture(str(tmp_path / "out.mp4"))
    frames = 0
    while cap.read()[0]:
        frames += 1
    assert frames == summary.steps > 0
    with pytest.raises(StreamError, match=".mp4 or .webm"):
        run_stream(StreamOptions(rgb=str(clip / "rgb.mp4"), ir=str(clip / "ir.mp4"), save=str(tmp_path / "o.gif")),
                   FakeEmbedder())
