"""--det-conf / --det-iou reach the detector: score threshold and NMS overlap, checked on a stand-in YOLOv8 graph."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from hicmd.runtime.detect import DetectorError, HogDetector, make_detector


@pytest.fixture(scope="module")
def yolo(tmp_path_factory):
    pytest.importorskip("onnx")
    from testkit.graphs import yolo_graph

    # two overlapping people (IoU 0.6) and one alone
    boxes = [[300, 320, 100, 200, 0.9], [325, 320, 100, 200, 0.5], [100, 320, 60, 150, 0.3]]
    return str(yolo_graph(tmp_path_factory.mktemp("yolo") / "person.onnx", boxes))


def _scores(detector) -> list[float]:
    return sorted(round(float(s), 2) for s in detector.detect(np.zeros((640, 640, 3), np.uint8), 1)[:, 4])


def test_thresholds_reach_the_onnx_detector(yolo):
    assert _scores(make_detector(yolo, None)) == [0.3, 0.9]  # defaults 0.25 / 0.45: the 0.5 box overlaps 0.6
    assert _scores(make_detector(yolo, None, conf=0.4)) == [0.9]
    assert _scores(make_detector(yolo, None, iou=0.7)) == [0.3, 0.5, 0.9]
    assert _scores(make_detector(yolo, None, conf=0.95)) == []


def test_thresholds_reach_hog_and_bad_values_fail():
    hog = make_detector("hog", None, conf=0.6, iou=0.3)
    assert isinstance(hog, HogDetector) and (hog.conf_threshold, hog.iou_threshold) == (0.6, 0.3)
    for conf, iou in ((1.5, None), (-0.1, None), (None, 0.0)):
        with pytest.raises(DetectorError):
            make_detector(None, None, conf=conf, iou=iou)


def test_cli_bad_threshold_is_one_line(tmp_path):
    run = subprocess.run([sys.executable, "-m", "hicmd", "stream", "--rgb", "cam0", "--ir", "cam1", "--model",
                          str(tmp_path), "--det-conf", "3"], capture_output=True, text=True, timeout=60)
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert run.returncode == 2 and len(lines) == 1 and "--det-conf" in lines[0], run.stderr
