"""The stream benchmark: a clip played through run_stream as fast as possible (files in order, detections from
det_*.txt), processed FPS against the embedder-bound FPS (1 / embedding time per step)."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import numpy as np

from hicmd.bench.rows import StreamRow
from hicmd.bench.subjects import BenchError, Subject
from hicmd.modality import MODALITIES

__all__ = ["find_clip", "make_clip", "bench_stream"]


def find_clip(path: Path) -> Path:
    """A clip folder (rgb.mp4 + ir.mp4 + det_*.txt), given either the clip itself or a `hicmd synth --videos` root."""
    for candidate in (path, *sorted((path / "videos").glob("*")), *sorted(path.glob("*"))):
        if all((candidate / f).is_file() for f in ("rgb.mp4", "ir.mp4", "det_rgb.txt", "det_ir.txt")):
            return candidate
    raise BenchError(f"{path} holds no clip (rgb.mp4, ir.mp4, det_rgb.txt, det_ir.txt); "
                    f"write one with 'hicmd synth --out DIR --ids 8 --videos'")


def make_clip(folder: Path, frames: int) -> Path:
    """A small SynthVI clip (4 identities walking past both cameras) for the stream benchmark."""
    from hicmd.data.synthvi_video import write_videos

    return write_videos(folder, [0, 1, 2, 3], seed=0, clips=1, frames=frames)[0]


class _TimedEmbedder:
    """Wraps an Embedder and adds up the wall time of its calls. An export with only the RGB graph serves IR
    crops with it too (same architecture, same cost)."""

    def __init__(self, embedder: Any) -> None:
        self.inner, self.seconds, self.crops, self.calls = embedder, 0.0, 0, 0

    def embed(self, crops: list[np.ndarray], modality: str) -> np.ndarray:
        modality = modality if modality in self.inner.backends else "rgb"
        start = time.perf_counter()
        out = self.inner.embed(crops, modality)
        self.seconds += time.perf_counter() - start
        self.crops += len(crops)
        self.calls += 1
        return out

    def embed_pair(self, rgb: list[np.ndarray], ir: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        return self.embed(rgb, "rgb"), self.embed(ir, "ir")


def bench_stream(subject: Subject, clip: Path, threads: int, max_frames: int | None = None) -> StreamRow:
    """Play a clip as fast as possible (files in order, detections from det_*.txt) through run_stream with the
    ONNX Runtime FP32 embedder; processed FPS against the embedder-bound FPS (1 / embedding time per step)."""
    from hicmd.runtime.embedder import Embedder
    from hicmd.runtime.stream import StreamOptions, run_stream

    modalities = MODALITIES if subject.manifest.find("embedder", "ir") else ("rgb",)
    embedder = Embedder(subject.manifest, backend="onnxruntime", device="cpu", precision="fp32", threads=threads,
                        modalities=modalities)
    description = embedder.describe()
    timed = _TimedEmbedder(embedder)
    spec = subject.manifest.input
    for modality in MODALITIES:  # warm-up: the first run of a session allocates and plans
        timed.embed([np.zeros((spec.height, spec.width, 3), np.uint8)], modality)
    timed.seconds, timed.crops, timed.calls = 0.0, 0, 0
    opts = StreamOptions(rgb=str(clip / "rgb.mp4"), ir=str(clip / "ir.mp4"),
                         detections_rgb=str(clip / "det_rgb.txt"), detections_ir=str(clip / "det_ir.txt"),
                         events=io.StringIO(), realtime=False, max_frames=max_frames, stats_every=1e9)
    try:
        summary = run_stream(opts, timed)
    finally:
        embedder.close()
    steps = summary.steps
    processed_fps = steps / summary.duration_s if summary.duration_s > 0 else 0.0
    bound_fps = steps / timed.seconds if timed.seconds > 0 else None
    return StreamRow(subject.cfg.name, str(clip), steps, summary.duration_s, processed_fps, timed.seconds, timed.crops,
                     1000.0 * timed.seconds / steps if steps else None, bound_fps,
                     processed_fps / bound_fps if bound_fps else None, summary.stages, summary.frames, description)
