"""One whole `hicmd bench` run: peaks, subjects, the embedder matrix, the stream and the training step, targets."""

from __future__ import annotations

import dataclasses
import importlib.util
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from hicmd.bench.embedder import add_ratios, bench_embedder, peak_fraction
from hicmd.bench.machine import default_threads, machine_info
from hicmd.bench.peaks import measure_peaks
from hicmd.bench.rows import BenchResult, EmbedderRow, Peak, StreamRow, TrainRow
from hicmd.bench.stream import bench_stream, find_clip, make_clip
from hicmd.bench.subjects import BenchError, export_subject, random_subject
from hicmd.bench.targets import targets
from hicmd.bench.timing import FULL, QUICK, TimingPolicy, timed_step
from hicmd.bench.train import bench_train

__all__ = ["BenchOptions", "run_bench"]


@dataclass
class BenchOptions:
    configs: list[str] = field(default_factory=lambda: ["paper", "tiny"])
    batches: list[int] = field(default_factory=lambda: [1, 8, 32])
    backends: list[str] = field(default_factory=lambda: ["torch", "onnxruntime", "tensorrt"])
    precisions: list[str] = field(default_factory=lambda: ["fp32", "fp16"])
    model: Path | None = None  # export folder; None = random-initialised model of each config
    checkpoint: Path | None = None
    quick: bool = False
    threads: int | None = None
    compile: bool = False
    embedder: bool = True
    stream: bool = False
    clip: Path | None = None  # a clip folder or `hicmd synth --videos` output for the stream benchmark
    train: bool = False


def run_bench(opts: BenchOptions, work: Path, log: Callable[[str], None] = print,
              progress: Callable[[str], None] | None = None) -> BenchResult:
    """Everything one `hicmd bench` measures. `work` holds temporary exports and clips."""
    from hicmd.presets import PRESETS

    threads = opts.threads or default_threads()
    policy = QUICK if opts.quick else FULL
    machine = machine_info(threads)
    repeats = 3 if opts.quick else 10
    peaks = timed_step("GEMM peaks (fp32, int8, bf16)", lambda: measure_peaks(threads, 2048, repeats), log)
    if opts.model is not None:
        subjects = [timed_step(f"load {opts.model}", lambda: export_subject(opts.model, opts.checkpoint), log)]
    elif importlib.util.find_spec("torch") is None:
        raise BenchError("without torch, hicmd bench measures an export folder: pass --model DIR (hicmd export)")
    else:
        subjects = [timed_step(f"export random {name}", lambda name=name: random_subject(
            PRESETS[name], work / name, fp16="fp16" in opts.precisions, int8="int8" in opts.precisions), log)
            for name in opts.configs]
    rows: list[EmbedderRow] = []
    if opts.embedder:
        for subject in subjects:
            rows += bench_embedder(subject, opts.batches, opts.backends, opts.precisions, threads, policy,
                                   opts.compile, progress)
        add_ratios(rows)
    streams: list[StreamRow] = []
    if opts.stream:
        clip = find_clip(opts.clip) if opts.clip else timed_step(
            "write SynthVI clip", lambda: make_clip(work / "videos", 20 if opts.quick else 120), log)
        for subject in subjects:
            if progress:
                progress(f"stream {subject.cfg.name}")
            streams.append(bench_stream(subject, clip, threads, 20 if opts.quick else None))
    trains: list[TrainRow] = []
    if opts.train:
        train_policy = TimingPolicy(1, 2, 0.0, 2) if opts.quick else TimingPolicy(2, 20, 30.0, 5)
        for subject in subjects:
            if progress:
                progress(f"training step {subject.cfg.name}")
            trains.append(bench_train(subject.cfg, train_policy, threads))
    peaks = _higher_peaks(peaks, measure_peaks(threads, 2048, repeats))
    for row in rows:
        if row.ok:
            row.peak_fraction = peak_fraction(row, peaks)
    return BenchResult(
        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"), quick=opts.quick, threads=threads, policy=policy.describe(),
        machine=machine, peaks=peaks,
        weights=", ".join(sorted({s.weights for s in subjects})) + (
            " (latency does not depend on the weights)" if any(s.weights == "random" for s in subjects) else ""),
        configs={s.cfg.name: {"macs_per_image": s.macs, "weights": s.weights, "notes": s.notes} for s in subjects},
        embedder=rows, stream=streams, train=trains, targets=targets(rows, streams))


def _higher_peaks(first: dict[str, Peak | None], again: dict[str, Peak | None]) -> dict[str, Peak | None]:
    """Peaks are measured before and after the timings: on a busy machine the higher is closer to the ceiling."""
    peaks = dict(first)
    for kind, before in first.items():
        after = again.get(kind)
        if before is None or after is None:
            continue
        best = max(before, after, key=lambda p: p.gflops)
        peaks[kind] = dataclasses.replace(
            best, method=best.method + " (higher of a run before and one after the timings)",
            measured_gflops=(before.gflops, after.gflops))
    return peaks
