"""What one `hicmd bench` run measured, as dataclasses: the report writers and bench.json read the same objects.

Field names are bench.json's keys (`BenchResult.as_dict`), so scripts reading the JSON keep working.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from hicmd.bench.timing import Latency

__all__ = ["EmbedderRow", "StreamRow", "TrainRow", "Target", "Peak", "BenchResult"]


@dataclass
class EmbedderRow:
    """One backend x precision x variant at one batch size; `status` is "ok", "skipped: why" or "failed: why"."""

    config: str
    backend: str
    precision: str
    variant: str
    device: str
    batch: int | None
    status: str = "ok"
    description: str = ""
    runs: int | None = None
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    mean_ms: float | None = None
    images_per_s: float | None = None
    gflops: float | None = None
    peak_fraction: float | None = None
    parity_cosine: float | None = None
    speedup_vs_eager: float | None = None  # torch eager FP32 p50 / this p50, same config and batch
    stages_ms: dict[str, float] | None = None  # TensorRT: preprocess / h2d / compute / d2h

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @classmethod
    def skipped(cls, config: str, backend: str, precision: str, variant: str, why: str) -> EmbedderRow:
        return cls(config, backend, precision, variant, "-", None, status=f"skipped: {why}")

    def timed(self, latency: Latency) -> None:
        self.runs, self.p50_ms, self.p90_ms, self.p99_ms = latency.runs, latency.p50_ms, latency.p90_ms, latency.p99_ms
        self.mean_ms, self.images_per_s = latency.mean_ms, latency.images_per_s


@dataclass(frozen=True)
class StreamRow:
    """A clip played through run_stream as fast as possible: processed FPS against the embedder-bound FPS."""

    config: str
    clip: str
    steps: int
    duration_s: float
    processed_fps: float
    embed_s: float
    embedded_crops: int
    embed_ms_per_step: float | None
    embedder_bound_fps: float | None
    ratio: float | None  # processed / embedder-bound: what the pipeline itself costs
    stages: dict[str, Any]
    frames: dict[str, Any]
    embedder: str


@dataclass(frozen=True)
class TrainRow:
    """Iterations/s of the full training step (D + G update) on one in-memory batch."""

    config: str
    device: str
    threads: int
    runs: int
    p50_s: float
    iters_per_s: float
    images_per_iter: int
    images_per_s: float


@dataclass(frozen=True)
class Target:
    """One of the issues' targets; `met` is None where this run did not measure the case (`note` says how to)."""

    target: str
    value: float | None
    threshold: float
    met: bool | None
    note: str = ""


@dataclass(frozen=True)
class Peak:
    """This machine's measured GEMM peak for one precision (GOP/s for int8)."""

    gflops: float
    n: int
    threads: int
    best_s: float
    candidates: dict[str, float]
    method: str
    measured_gflops: tuple[float, ...] = ()  # every measurement when it was taken more than once


@dataclass
class BenchResult:
    created: str
    quick: bool
    threads: int
    policy: str
    machine: dict[str, Any]
    peaks: dict[str, Peak | None]  # "fp32" (sgemm), "int8", "bf16"
    weights: str
    configs: dict[str, dict[str, Any]]
    embedder: list[EmbedderRow] = field(default_factory=list)
    stream: list[StreamRow] = field(default_factory=list)
    train: list[TrainRow] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)

    @property
    def peak(self) -> Peak:
        """The sgemm peak, which every FP32/FP16 row's "% peak" divides by."""
        peak = self.peaks["fp32"]
        assert peak is not None  # always measured (ONNX Runtime's MatMul)
        return peak

    def as_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "peak": dataclasses.asdict(self.peak)}
