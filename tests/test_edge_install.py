"""The edge install: every verb, run in a subprocess where torch and the other extras cannot be imported, either works
or says in one line (exit 2) which extra to install. Also `--version`, `check` and the torch-free Python API.

The subprocess gets a sitecustomize.py on PYTHONPATH that hides the extras from every import finder, so
`import torch` raises ModuleNotFoundError and `importlib.util.find_spec("torch")` is None, as on a box where
`pip install hicmd` (no extras) is all there is.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from testkit.graphs import make_export
from testkit.stream import make_clip

# what a base install (no extras) does not have
HIDDEN = ("torch", "torchvision", "tensorboard", "onnx", "onnxconverter_common", "matplotlib", "tensorrt",
          "tritonclient", "paho", "motmetrics", "openvino", "nncf")
BLOCKER = f'''
import sys
HIDDEN = {set(HIDDEN)!r}

class _Hide:
    """Wraps an import finder so that the extras look uninstalled."""
    def __init__(self, finder):
        self.finder = finder
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HIDDEN:
            return None
        find = getattr(self.finder, "find_spec", None)
        return find(name, path, target) if find else None
    def __getattr__(self, attr):
        return getattr(self.finder, attr)

sys.meta_path[:] = [_Hide(f) for f in sys.meta_path]
'''


@pytest.fixture(scope="module")
def edge(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("edge")
    (root / "blocker").mkdir()
    (root / "blocker" / "sitecustomize.py").write_text(BLOCKER)
    make_export(root / "model", checkpoint="ckpt.pt")
    for path in (root / "ckpt.pt", root / "model" / "ckpt.pt"):  # the torch backend wants it beside the manifest
        path.write_bytes(b"not read: the verb stops before")
    clip = make_clip(root / "clip", seconds=3.0)
    for name, value in (("a.png", 90), ("b.png", 160)):
        cv2.imwrite(str(root / name), np.full((32, 16, 3), value, np.uint8))
    env = {**os.environ, "PYTHONPATH": str(root / "blocker"), "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    return {"root": root, "model": root / "model", "clip": clip, "env": env}


def hicmd(edge: dict, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hicmd", *args], env=edge["env"], cwd=edge["root"],
                          capture_output=True, text=True, timeout=timeout)


def test_the_blocker_hides_torch(edge):
    probe = subprocess.run([sys.executable, "-c", "import importlib.util as u; print(u.find_spec('torch')); "
                            "import torch"], env=edge["env"], capture_output=True, text=True)
    assert probe.stdout.strip() == "None"
    assert "ModuleNotFoundError: No module named 'torch'" in probe.stderr


def test_version_and_check(edge):
    from hicmd import __version__

    run = hicmd(edge, "--version")
    assert run.returncode == 0 and run.stdout.strip() == f"hicmd {__version__}"
    run = hicmd(edge, "check")
    assert run.returncode == 0, run.stderr
    assert "onnxruntime" in run.stdout and "CPUExecutionProvider" in run.stdout
    assert "torch        not installed" in run.stdout and "pip install 'hicmd[train]'" in run.stdout
    env = json.loads(hicmd(edge, "check", "--json").stdout)
    assert env["torch"] is None and env["hicmd"] == __version__ and env["opencv"]["version"] == cv2.__version__
    assert env["optional"]["onnx"] is None  # hidden: reported as missing, not crashed on


def test_stream_translate_calibrate_synth_work_without_torch(edge):
    clip, out = edge["clip"], edge["root"] / "out"
    run = hicmd(edge, "stream", "--rgb", str(clip / "rgb.mp4"), "--ir", str(clip / "ir.mp4"), "--model",
                str(edge["model"]), "--detections-rgb", str(clip / "det_rgb.txt"), "--detections-ir",
                str(clip / "det_ir.txt"), "--events", str(out / "ev.jsonl"), "--max-frames", "15")
    assert run.returncode == 0, run.stderr
    kinds = {json.loads(line)["event"] for line in (out / "ev.jsonl").read_text().splitlines()}
    assert "track_new" in kinds
    run = hicmd(edge, "translate", "--model", str(edge["model"]), "--src", "a.png", "--ref", "b.png", "--out",
                str(out / "x.png"))
    assert run.returncode == 0, run.stderr
    assert cv2.imread(str(out / "x.png")) is not None
    points = [(100, 400, 50, 200), (500, 420, 250, 210), (120, 100, 60, 50), (520, 110, 260, 55),
              (300, 250, 150, 125), (200, 330, 100, 165)]  # an exact 0.5x scale
    (out / "pairs.csv").write_text("".join(f"{a},{b},{c},{d}\n" for a, b, c, d in points))
    run = hicmd(edge, "calibrate", "--points", str(out / "pairs.csv"), "--rgb-size", "640x480", "--ir-size",
                "320x240", "--out", str(out / "calibration.json"))
    assert run.returncode == 0, run.stderr
    assert (out / "calibration.json").is_file()
    run = hicmd(edge, "synth", "--out", str(out / "synth"), "--ids", "2", "--per-id", "1")
    assert run.returncode == 0, run.stderr
    assert len(list((out / "synth").rglob("*.bmp"))) + len(list((out / "synth").rglob("*.png"))) >= 4


def _one_line(run: subprocess.CompletedProcess, extra: str) -> None:
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert run.returncode == 2, (run.returncode, run.stderr[-2000:])
    assert "Traceback" not in run.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), run.stderr
    assert f"pip install 'hicmd[{extra}]'" in lines[0], lines[0]


@pytest.mark.parametrize("args, extra", [
    (("train", "--data", "regdb:data", "--out", "run"), "train"),
    (("eval", "ckpt.pt", "--data", "regdb:data"), "train"),
    (("info",), "train"),
    (("convert-original", "--gen", "ckpt.pt", "--id", "ckpt.pt", "--out", "c.pt"), "train"),
    (("export", "ckpt.pt", "--out", "exported"), "export"),
    (("demo", "--out", "demo"), "export"),
    (("score", "--run", "run", "--gt", "gt"), "score"),
])
def test_torch_verbs_say_which_extra_in_one_line(edge, args, extra):
    run = hicmd(edge, *args)
    _one_line(run, extra)
    assert not (edge["root"] / "demo").exists(), "demo must stop before it writes anything"


def test_torch_backend_says_which_extra(edge):
    clip = edge["clip"]
    run = hicmd(edge, "stream", "--rgb", str(clip / "rgb.mp4"), "--ir", str(clip / "ir.mp4"), "--model",
                str(edge["model"]), "--backend", "torch", "--max-frames", "2")
    _one_line(run, "train")


def test_bench_model_without_torch(edge):
    """The edge box measures its export folder: peaks through ONNX Runtime / numpy, torch rows skipped."""
    run = hicmd(edge, "bench", "--model", str(edge["model"]), "--quick", "--batch", "1", "--backend",
                "onnxruntime", "--precision", "fp32", "--out", str(edge["root"] / "bench"), timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    rows = json.loads((edge["root"] / "bench" / "bench.json").read_text())["embedder"]
    assert [r["status"] for r in rows if r["backend"] == "onnxruntime"] == ["ok"]


def test_python_api_is_torch_free(edge):
    code = f"""
import sys, numpy as np
import hicmd
assert "cv2" not in sys.modules, "import hicmd must stay light"
from hicmd import Embedder, Translator, StreamOptions, run_stream
from hicmd.runtime import run_stream as same
assert same is run_stream and set(hicmd.__all__) >= {{"Embedder", "Translator", "run_stream", "StreamOptions"}}
with Embedder({str(edge['model'])!r}) as e:
    rng = np.random.default_rng(0)
    v = e.embed([rng.integers(0, 255, (40, 20, 3), np.uint8), rng.integers(0, 255, (30, 15), np.uint8)], "ir")
assert v.shape == (2, 6) and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
clip = {str(edge['clip'])!r}
events = []
summary = run_stream(StreamOptions(rgb=clip + "/rgb.mp4", ir=clip + "/ir.mp4", detections_rgb=clip + "/det_rgb.txt",
                                   detections_ir=clip + "/det_ir.txt", max_frames=10, events=open("/dev/null", "w")),
                     Embedder({str(edge['model'])!r}), on_event=events.append)
assert summary.steps == 10 and any(ev["event"] == "track_new" for ev in events)
assert "torch" not in sys.modules
print("ok")
"""
    run = subprocess.run([sys.executable, "-c", code], env=edge["env"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr
