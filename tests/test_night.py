"""The night scenario: people enrolled from the RGB camera by day are named in an IR-only stream."""

from __future__ import annotations


import pytest

from hicmd.runtime.matchscore import read_events
from hicmd.runtime.stream import StreamError, StreamOptions, run_stream

from testkit.stream import FakeEmbedder, Walker, make_clip


def test_ir_only_stream_names_people_enrolled_by_the_rgb_camera(tmp_path):
    day = make_clip(tmp_path / "day", seconds=3.0, people=[Walker(2, 1, 40, 20, 0.0, 4.0)])
    gallery = tmp_path / "gallery"
    run_stream(StreamOptions(rgb=str(day / "rgb.mp4"), ir=str(day / "ir.mp4"), detections_rgb=str(day / "det_rgb.txt"),
                             detections_ir=str(day / "det_ir.txt"), gallery=str(gallery), enroll="carol",
                             enroll_max=3, events=str(tmp_path / "day.jsonl")), FakeEmbedder())
    for crop in (gallery / "carol").glob("ir_*"):
        crop.unlink()  # by day only the RGB camera's crops are kept: the gallery is visible-light only
    assert sorted(p.name.split("_")[0] for p in (gallery / "carol").iterdir()) == ["rgb"] * 3
    night = make_clip(tmp_path / "night", seconds=4.0)  # carol (person 2) among others, seen by the IR camera only
    summary = run_stream(StreamOptions(rgb=None, ir=str(night / "ir.mp4"), detections_ir=str(night / "det_ir.txt"),
                                       gallery=str(gallery), events=str(tmp_path / "night.jsonl")),
                         FakeEmbedder(seed=4))
    assert summary.frames["ir"]["processed"] == 20 and "rgb" not in summary.frames
    named = [e for e in read_events(tmp_path / "night.jsonl") if e["event"] == "named"]
    assert named and all(e["camera"] == "ir" for e in named)
    assert {e["name"] for e in named} == {"carol"}
    assert len({e["track"] for e in named}) == 1  # one IR person is carol; the others stay unnamed
    assert not [e for e in read_events(tmp_path / "night.jsonl") if e["event"] == "match"]


def test_ir_only_refuses_a_calibration(tmp_path):
    clip = make_clip(tmp_path / "c", seconds=1.0)
    with pytest.raises(StreamError, match="needs --rgb"):
        run_stream(StreamOptions(rgb=None, ir=str(clip / "ir.mp4"), calibration=str(tmp_path / "cal.json")),
                   FakeEmbedder())
