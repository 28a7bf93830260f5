"""benchmarks/appearance_pairs.py: which pairing of two people a model's appearance prefers, on hand-made looks and
on a rendered clip's crops."""

import importlib.util
import json
from pathlib import Path

import numpy as np

from hicmd.data.synthvi_video import write_clip

BENCH = Path(__file__).parents[1] / "benchmarks" / "appearance_pairs.py"
spec = importlib.util.spec_from_file_location("bench_appearance", BENCH)
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def test_the_window_decides_which_pairing_wins():
    one, two = np.eye(4)[0], np.eye(4)[1]
    moments = [round(0.2 * k, 1) for k in range(50)]  # 10 s
    # the IR looks of the two people are swapped in their first second together and right afterwards
    ir = {p: {t: (other if t < 1 else own) for t in moments} for p, own, other in ((1, one, two), (2, two, one))}
    looks = {("rgb", 1): dict.fromkeys(moments, one), ("rgb", 2): dict.fromkeys(moments, two),
             ("ir", 1): ir[1], ("ir", 2): ir[2], ("rgb", 3): dict.fromkeys(moments, one)}  # 3: the RGB camera only
    (row,) = bench.right_wins(looks, [1.0, 10.0])
    assert row == {"people": [1, 2], "1.0": False, "10.0": True}


def test_crops_are_taken_at_the_same_moments_in_both_cameras(tmp_path):
    clip = tmp_path / "clip"
    write_clip(clip, [1, 2], seed=3, index=0, frames=20, ir_fps=5)  # the IR camera at half the RGB rate
    seen: list[tuple[str, tuple[int, ...]]] = []

    def embed(crops, camera):
        seen.append((camera, tuple(c.shape[2] for c in crops)))
        return np.tile(np.eye(3)[0 if camera == "rgb" else 1], (len(crops), 1))

    looks = bench.clip_looks(clip, embed, every=2)
    gt = {cam: np.loadtxt(clip / f"gt_{cam}.txt", delimiter=",", ndmin=2) for cam in ("rgb", "ir")}
    assert json.loads((clip / "clip.json").read_text())["fps"]["ir"] == 5
    for cam, fps in (("rgb", 10), ("ir", 5)):
        # every person the gt places in a frame of an embedded moment has a look there, and only those moments
        expected = {(int(pid), round((frame - 1) / fps, 3)) for frame, pid in gt[cam][:, :2]
                    if round((frame - 1) / fps * 10) % 2 == 0}
        got = {(pid, t) for (c, pid), by_t in looks.items() if c == cam for t in by_t}
        assert got and got <= expected and len(got) >= len(expected) - 2  # a box cut to under 4 px is skipped
    assert {t for (c, _), by_t in looks.items() if c == "ir" for t in by_t} <= \
        {t for (c, _), by_t in looks.items() if c == "rgb" for t in by_t}
    assert all(channels == (3,) * len(channels) for _, channels in seen)  # BGR crops, as the stream hands them
