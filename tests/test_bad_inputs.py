"""Bad inputs a user can give the stream, calibrate and score, each met by one clear error instead of a traceback,
a silently ignored option, or an output written over an input (found by trying the CLI as a new user would)."""

from __future__ import annotations

import json
import math
import stat

import numpy as np
import pytest

from hicmd.runtime.atomic import clashing_outputs, write_atomically
from hicmd.runtime.detect import DetectorError, OnnxDetector, read_mot
from hicmd.runtime.gallery import Gallery, GalleryError, save_crop
from hicmd.runtime.manifest import ManifestError, load_manifest
from hicmd.runtime.matchscore import read_events
from hicmd.runtime.options import StreamError, StreamOptions
from testkit.cli import hicmd, one_line


# ---------------------------------------------------------------------------------------------- detections files

@pytest.mark.parametrize("row, line", [
    ("1,-1,nan,10,20,40,0.9", 2), ("1,-1,inf,10,20,40,0.9", 2), ("1,-1,5,5,1e300,40,0.9", 2),
    ("1,-1,5,5,-20,40,0.9", 2), ("0,-1,5,5,20,40,0.9", 2), ("1,-1,5,x,20,40,0.9", 2), ("1,2,3", 2),
])
def test_a_detections_row_that_no_box_can_come_from_is_named_by_its_line(tmp_path, row, line):
    path = tmp_path / "det.txt"
    path.write_text(f"1,-1,10,20,30,40,0.9\n{row}\n")
    with pytest.raises(DetectorError, match=f"line {line}:") as caught:
        read_mot(path)
    assert "usecols" not in str(caught.value)  # numpy's advice means nothing to a CLI user


def test_an_empty_detections_file_is_no_detections_without_a_warning(tmp_path, recwarn):
    (tmp_path / "det.txt").write_text("")
    assert read_mot(tmp_path / "det.txt") == {}
    assert not recwarn.list


def test_a_graph_that_is_not_a_detector_is_refused_when_loaded(tmp_path):
    from testkit.graphs import make_export

    make_export(tmp_path / "model")  # its embedders take uint8 NHWC crops, not a float image batch
    with pytest.raises(DetectorError, match="not a YOLO-style person detector"):
        OnnxDetector(tmp_path / "model" / "rgb.onnx")


# ---------------------------------------------------------------------------------------------- stream options

@pytest.mark.parametrize("option, value", [
    ("weight_time", math.nan), ("weight_geometry", math.inf), ("weight_time", -1.0), ("geometry_gate", math.nan),
    ("geometry_gate", 0.0), ("geometry_trust", -1.0), ("match_threshold", -1.0), ("match_threshold", 5.0),
    ("max_frames", 0), ("stats_every", 0.0), ("pair_tolerance_ms", -5.0), ("embed_every", 0), ("confirm", 0),
])
def test_stream_options_out_of_range_are_refused_naming_the_flag(option, value):
    # a NaN or infinite cost weight used to fail the Hungarian assignment mid-run; others were silently odd
    with pytest.raises(StreamError, match=f"--{option.replace('_', '-')} "):
        StreamOptions(rgb="a.mp4", ir="b.mp4", **{option: value})


def test_options_that_would_be_ignored_are_refused(tmp_path):
    with pytest.raises(StreamError, match="needs --cues geometry"):
        StreamOptions(rgb="a.mp4", ir="b.mp4", calibration="cal.json", cues="time")
    with pytest.raises(StreamError, match="--detections-rgb needs --rgb"):
        StreamOptions(rgb=None, ir="b.mp4", detections_rgb="det.txt", gallery="g")
    for name in ("", "../x", "a/b"):
        with pytest.raises(StreamError, match="--enroll"):
            StreamOptions(rgb="a.mp4", ir="b.mp4", gallery="g", enroll=name)
    (tmp_path / "clip.mp4").write_bytes(b"x")
    with pytest.raises(StreamError, match="--rgb and --ir are the same file"):
        StreamOptions(rgb=str(tmp_path / "clip.mp4"), ir=str(tmp_path / "." / "clip.mp4"))


def test_an_output_never_overwrites_an_input_or_another_output(tmp_path):
    video = tmp_path / "rgb.mp4"
    video.write_bytes(b"recording")
    for output in ("save", "events"):
        with pytest.raises(StreamError, match=f"--{output} .* is the --rgb input"):
            StreamOptions(rgb=str(video), ir="cam1", **{output: str(video)})
    with pytest.raises(StreamError, match="both"):
        StreamOptions(rgb="cam0", ir="cam1", save=str(tmp_path / "x.mp4"), events=str(tmp_path / "x.mp4"))
    assert video.read_bytes() == b"recording"
    # camera URLs and outputs that do not exist yet clash with nothing
    assert clashing_outputs({"--out": tmp_path / "new.json"}, {"--rgb": "rtsp://cam/x", "--points": video}) is None


# ---------------------------------------------------------------------------------------------- gallery

def test_a_gallery_that_names_no_one_is_refused_unless_the_run_enrols(tmp_path, capsys):
    embedder = _GreyEmbedder()
    with pytest.raises(GalleryError, match="not found"):
        Gallery(tmp_path / "typo", embedder)
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "alice.png").write_bytes(b"not a picture in a name folder")
    with pytest.raises(GalleryError, match="holds no readable crops"):
        Gallery(tmp_path / "flat", embedder)
    assert len(Gallery(tmp_path / "new", embedder, enrolling=True)) == 0  # enrolment creates it
    save_crop(tmp_path / "g", "alice", np.full((8, 4, 3), 200, np.uint8), "rgb", "1")
    (tmp_path / "g" / "alice" / "rgb_2.png").write_bytes(b"cut short")
    assert len(Gallery(tmp_path / "g", embedder)) == 1
    assert "1 gallery crop(s) could not be read" in capsys.readouterr().err


class _GreyEmbedder:
    def embed(self, crops, modality):
        return np.ones((len(crops), 2), np.float32) / np.sqrt(2)


# ---------------------------------------------------------------------------------------------- model folder

@pytest.mark.parametrize("edit, message", [
    (lambda m: m["input"].update(height=-80), "input.height"),
    (lambda m: m["input"].update(mean=[0.5]), "input.mean"),
    (lambda m: m.update(gates="oops"), "gates"),
    (lambda m: m.update(gates={"match": "x"}), "gates.match"),
    (lambda m: m.update(gates={"match": {"threshold": float("nan")}}), "gates.match.threshold"),
])
def test_a_hand_edited_manifest_with_values_no_export_writes_is_refused(tmp_path, edit, message):
    from testkit.graphs import make_export

    make_export(tmp_path)
    data = json.loads((tmp_path / "manifest.json").read_text())
    edit(data)
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ManifestError, match=message):
        load_manifest(tmp_path)


def test_an_embedding_size_the_graph_does_not_give_is_refused(tmp_path):
    from hicmd.runtime.embedder import Embedder
    from testkit.graphs import make_export

    make_export(tmp_path)
    data = json.loads((tmp_path / "manifest.json").read_text())
    data["embedding_dim"] += 1
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    with Embedder(tmp_path, device="cpu") as embedder, pytest.raises(ManifestError, match="embedding_dim"):
        embedder.embed([np.zeros((16, 8, 3), np.uint8)], "rgb")


def test_a_server_address_without_the_triton_backend_is_refused(tmp_path):
    from hicmd.runtime.backends import BackendError, open_backend
    from testkit.graphs import make_export

    with pytest.raises(BackendError, match="needs --backend triton"):
        open_backend(make_export(tmp_path), "embedder", "rgb", backend="onnxruntime", url="grpc://10.0.0.2:8001")


# ---------------------------------------------------------------------------------------------- outputs

def test_the_annotated_video_is_private(tmp_path):
    from hicmd.runtime.annotate import VideoSink

    sink = VideoSink(tmp_path / "out" / "run.mp4", 10.0)
    for _ in range(3):
        sink.write(np.zeros((48, 64, 3), np.uint8))
    sink.close()
    assert stat.S_IMODE((tmp_path / "out" / "run.mp4").stat().st_mode) == 0o600  # it shows the people watched


def test_a_file_that_cannot_be_written_is_named_as_asked_not_as_its_temporary(tmp_path):
    (tmp_path / "folder").mkdir()
    with pytest.raises(OSError) as caught:
        write_atomically(tmp_path / "folder", "{}")
    assert caught.value.filename == str(tmp_path / "folder") and ".tmp" not in str(caught.value)


# ---------------------------------------------------------------------------------------------- score

def test_events_scoring_cannot_read_are_counted_not_a_traceback(tmp_path):
    path = tmp_path / "events.jsonl"
    lines = ['{"event": "match"}', '{"event": "track_new", "camera": "rgb", "track": "1", "t": 0}',
             '{"event": "calibration", "t": 1, "homography": [[1, 0], [0, 1]]}']
    path.write_bytes(("\n".join(lines) + "\n").encode() + b"\xaa\xbb\n")
    assert [e["event"] for e in read_events(path)] == ["unreadable"] * 4


def test_score_refuses_a_broken_clip_json_and_an_output_over_its_inputs(tmp_path):
    run, clip = tmp_path / "run", tmp_path / "clip"
    (run / "tracks").mkdir(parents=True)
    clip.mkdir()
    (run / "events.jsonl").write_text("")
    for cam in ("rgb", "ir"):
        (clip / f"gt_{cam}.txt").write_text("1,1,10,10,20,40,1\n")
        for name in (f"{cam}.txt", f"{cam}_global.txt"):
            (run / "tracks" / name).write_text("1,1,10,10,20,40,1\n")
    one_line(hicmd("score", "--run", str(run), "--gt", str(clip), "--out", str(run / "events.jsonl")),
             "is the --run folder's events.jsonl input")
    (clip / "clip.json").write_text('{"fps": ')
    one_line(hicmd("score", "--run", str(run), "--gt", str(clip)), "clip.json is not valid JSON")
    (clip / "clip.json").write_text("[]")
    one_line(hicmd("score", "--run", str(run), "--gt", str(clip)), "not a SynthVI clip description")


# ---------------------------------------------------------------------------------------------- calibrate

def test_calibrate_reads_a_spreadsheets_points_and_refuses_points_outside_the_image(tmp_path):
    square = [(0, 0), (300, 0), (300, 200), (0, 200), (150, 120)]
    (tmp_path / "bom.csv").write_text("\ufeff" + "".join(f"{x} {y} {x / 2} {y / 2}\n" for x, y in square))
    sizes = ["--rgb-size", "320x240", "--ir-size", "160x120"]
    proc = hicmd("calibrate", "--points", str(tmp_path / "bom.csv"), *sizes, "--out", str(tmp_path / "c.json"))
    assert proc.returncode == 0 and "over 5 of 5 pairs" in proc.stdout, proc.stdout + proc.stderr
    (tmp_path / "far.csv").write_text("".join(f"{x},{y},{x * 3},{y * 3}\n" for x, y in square))
    one_line(hicmd("calibrate", "--points", str(tmp_path / "far.csv"), *sizes), "its IR point (900, 0) lies outside")
    one_line(hicmd("calibrate", "--points", str(tmp_path / "far.csv"), "--ir-size", "160x120"),
             "--points needs --rgb-size")
    one_line(hicmd("calibrate", "--points", str(tmp_path / "far.csv"), *sizes, "--out", str(tmp_path / "far.csv")),
             "is the --points input")
