"""Unit tests of what the stream reads and writes: events, the gallery, frame pairing and buffers, detections."""

from __future__ import annotations

import io
import json
import stat

import cv2
import numpy as np
import pytest

from hicmd.runtime.matchscore import score_matches
from hicmd.runtime.capture import Frame, FrameBuffer
from hicmd.runtime.detect import DetectorError, FileDetections, OnnxDetector, parse_yolo, read_mot
from hicmd.runtime.events import SCHEMA, EventLog, validate_event
from hicmd.runtime.gallery import Gallery, GalleryError, save_crop
from hicmd.runtime.pairing import Pairer

# ------------------------------------------------------------------------------------------------ events, gallery


def test_event_log_schema_and_json_lines():
    sink = io.StringIO()
    log = EventLog(sink)
    samples = {
        "track_new": {"t": 0.1, "camera": "rgb", "track": 1, "gid": 1, "box": [0, 0, 1, 1], "frame": 1},
        "track_end": {"t": 2, "camera": "ir", "track": 1, "gid": 2, "hits": 5, "duration_s": 1.9,
                      "last_seen": 1.95},
        "match": {"t": 1.0, "gid": 1, "rgb_track": 1, "ir_track": 1, "distance": 0.2, "name": None, "rgb_frame": 10,
                  "ir_frame": 5},
        "match_lost": {"t": 1.5, "gid": 1, "rgb_track": 1, "ir_track": 1, "reason": "disagree", "duration_s": 0.5,
                       "rgb_frame": 15, "ir_frame": 8},
        "stats": {"cameras": {}, "stages": {}, "live_tracks": {}, "matches": 0},
        "source_down": {"camera": "ir", "source": "udp://x", "reason": "timeout"},
        "source_up": {"camera": "ir", "source": "udp://x", "down_s": 1.2},
        "calibration": {"t": 12.5, "status": "fitted", "source": "self", "reprojection_px": 1.7, "inliers": 20,
                        "pairs": 24},
        "named": {"t": 3.0, "camera": "ir", "track": 2, "gid": 2, "name": "carol", "distance": 0.41, "frame": 30},
    }
    assert set(samples) == set(SCHEMA)
    for kind, fields in samples.items():
        log.emit({"event": kind, **fields})
    lines = sink.getvalue().splitlines()
    assert len(lines) == len(samples)
    for line in lines:
        validate_event(json.loads(line))
    assert log.counts["match"] == 1
    with pytest.raises(ValueError, match="lacks 'gid'"):
        validate_event({"event": "match", "time": 1.0, "t": 1.0})
    with pytest.raises(ValueError, match="unknown event"):
        validate_event({"event": "nope", "time": 1.0})
    with pytest.raises(ValueError, match="should be"):
        validate_event({**json.loads(lines[0]), "track": "one"})


def test_an_events_file_cut_mid_line_is_continued_on_a_new_line_and_read_around_the_cut(tmp_path):
    """A run killed mid-line (or a full disk) leaves a cut last event; the next run appends to the same file: its
    first event must not be glued onto the cut one, and reading skips the cut line alone (scoring counts it)."""
    from hicmd.runtime.matchscore import read_events

    path = tmp_path / "events.jsonl"
    path.write_text('{"event":"track_new","t":0.1,"camera":"ir","track":1}\n{"event":"match","t":1.0,"rgb_tr')
    log = EventLog(path)
    log.emit({"event": "track_new", "t": 2.0, "camera": "rgb", "track": 3, "gid": 3, "box": [0, 0, 1, 1],
              "frame": 20})
    log.close()
    events = read_events(path)
    assert [e["event"] for e in events] == ["track_new", "unreadable", "track_new"]
    assert events[1]["line"] == 2 and events[2]["track"] == 3
    assert score_matches(events, {}, {}).matches == 0  # the cut match is not scored


class _ColourEmbedder:
    def embed(self, crops, modality):
        vecs = np.array([c.reshape(-1, 3).mean(0) + 1.0 for c in crops], np.float32)
        return vecs / np.linalg.norm(vecs, axis=1, keepdims=True)


def test_gallery_files_are_private_and_identify(tmp_path):
    root = tmp_path / "gallery"
    red = np.zeros((40, 20, 3), np.uint8)
    red[..., 2] = 255
    blue = np.zeros((40, 20, 3), np.uint8)
    blue[..., 0] = 255
    p1 = save_crop(root, "alice", red, "rgb", "1")
    save_crop(root, "bob", blue, "rgb", "1")
    assert stat.S_IMODE(p1.stat().st_mode) == 0o600
    assert stat.S_IMODE(root.stat().st_mode) == 0o700 and stat.S_IMODE((root / "alice").stat().st_mode) == 0o700
    with pytest.raises(GalleryError):
        save_crop(root, "../evil", red, "rgb")
    gallery = Gallery(root, _ColourEmbedder(), threshold=0.1)
    assert len(gallery) == 2
    name, dist = gallery.identify(_ColourEmbedder().embed([red], "rgb")[0])
    assert name == "alice" and dist < 1e-5
    green = np.zeros((4, 4, 3), np.uint8)
    green[..., 1] = 255
    assert gallery.identify(_ColourEmbedder().embed([green], "rgb")[0])[0] is None


# ------------------------------------------------------------------------------------------------ pairing, buffers


def _frame(cam, t, index=0):
    return Frame(cam, index, t, np.zeros((2, 2), np.uint8))


def test_pairer_nearest_within_tolerance():
    pairer = Pairer(tolerance=0.02)
    for k in range(6):
        pairer.push(_frame("rgb", k / 30))  # 30 fps
    for t in (0.001, 0.105, 0.5):  # ~9 Hz thermal with jitter; 0.5 is far beyond the last rgb frame
        pairer.push(_frame("ir", t))
    pairs = pairer.pop()
    got = [(None if r is None else round(r.t, 3), None if i is None else i.t) for r, i in pairs]
    assert got[0] == (0.0, 0.001)
    assert (0.1, 0.105) in got
    assert got.count((None, 0.5)) == 0  # undecided: rgb may still deliver a frame near 0.5
    assert len([g for g in got if g[0] is not None]) == 6
    assert pairer.pop(ended={"rgb"}) and not any(pairer.buffers.values())


def test_frame_buffer_policies():
    import threading

    stop = threading.Event()
    newest = FrameBuffer(1, drop_oldest=True)
    for k in range(5):
        newest.put(_frame("rgb", k), stop)
    assert newest.dropped == 4 and newest.get(0).t == 4 and newest.get(0) is None
    ordered = FrameBuffer(2, drop_oldest=False)
    ordered.put(_frame("rgb", 0), stop)
    ordered.put(_frame("rgb", 1), stop)
    stop.set()
    ordered.put(_frame("rgb", 2), stop)  # full + stopping: returns instead of blocking, drops nothing counted
    assert [ordered.get(0).t, ordered.get(0).t] == [0, 1] and ordered.dropped == 0


# ------------------------------------------------------------------------------------------------ detection


def test_mot_detections_file(tmp_path):
    path = tmp_path / "det.txt"
    path.write_text("1,-1,10,20,30,40,0.9,-1,-1,-1\n1,-1,0,0,5,5,0.3,-1,-1,-1\n3,-1,1,2,3,4,0.5,-1,-1,-1\n")
    det = FileDetections(path)
    assert np.allclose(det.detect(None, 1), [[10, 20, 40, 60, 0.9], [0, 0, 5, 5, 0.3]])
    assert det.detect(None, 2).shape == (0, 5)
    assert read_mot(path)[3][0, :4].tolist() == [1, 2, 4, 6]
    with pytest.raises(DetectorError, match="no such"):
        FileDetections(tmp_path / "missing.txt")


def test_parse_yolo_layouts():
    v8 = np.zeros((1, 6, 8), np.float32)  # 4 box + 2 classes, 8 anchors (channels first)
    v8[0, :, 0] = [50, 60, 10, 20, 0.9, 0.1]
    v8[0, :, 1] = [5, 5, 2, 2, 0.1, 0.95]  # a confident non-person
    rows = parse_yolo(v8, 0.25)
    assert np.allclose(rows, [[50, 60, 10, 20, 0.9]])
    v5 = np.zeros((1, 9, 7), np.float32)  # 9 anchors x (4 box + objectness + 2 classes)
    v5[0, 0] = [50, 60, 10, 20, 0.8, 0.5, 0.5]  # obj 0.8 * person 0.5 = 0.4
    v5[0, 1] = [5, 5, 2, 2, 0.9, 0.1, 0.9]
    assert np.allclose(parse_yolo(v5, 0.25), [[50, 60, 10, 20, 0.4]])


def test_onnx_detector_end_to_end(tmp_path):
    pytest.importorskip("onnx")
    from testkit.graphs import yolo_graph

    # one person box at (320, 240) of the frame, (320, 320) in the 640x640 letterbox
    det = OnnxDetector(yolo_graph(tmp_path / "det.onnx", [[320, 320, 100, 200, 0.9]]))
    boxes = det.detect(np.zeros((480, 640, 3), np.uint8), 1)  # letterbox: scale 1, 80 px top padding
    assert boxes.shape == (1, 5)
    assert boxes[0, :4].tolist() == pytest.approx([270, 140, 370, 340])
    assert det.detect(np.zeros((240, 320), np.uint8), 1).shape == (1, 5)  # grey IR frames work too
    # it runs between the embedders: its idle threads sleep rather than take their cores (runtime/backends)
    assert det.session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning") == "0"
    with pytest.raises(DetectorError):
        OnnxDetector(tmp_path / "missing.onnx")


def test_hog_detector_runs():
    from hicmd.runtime.detect import HogDetector

    image = np.full((256, 192, 3), 127, np.uint8)
    cv2.rectangle(image, (70, 40), (120, 220), (20, 20, 20), -1)
    out = HogDetector().detect(image, 1)
    assert out.ndim == 2 and out.shape[1] == 5 and out.dtype == np.float32
