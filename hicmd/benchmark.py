"""`hicmd bench`, the measuring part: timing policy and statistics, the machine record, and the embedder matrix
(backend x precision x batch) with its ratio-to-eager, GFLOP/s and parity columns (the per-precision GEMM peaks
are hicmd.benchmark_peaks). Torch is optional: without it the torch rows are skipped with a note and parity is
measured against ONNX Runtime FP32.

Every measurement is a plain dict (one row), so the report writers (hicmd.benchmark_report) and the JSON file
see the same numbers. Latency is the wall time of one `run` call for a batch; throughput is images per second
over all timed runs. The model's weights do not change its latency, so a random-initialised model measures as
well as a trained one (the output says which was used).
"""

from __future__ import annotations

import copy
import importlib.util
import os
import platform
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from hicmd.benchmark_peaks import peak_class
from hicmd.runtime.cpu import cpu_info

__all__ = [
    "TimingPolicy", "FULL", "QUICK", "time_runs", "latency_stats", "cosine_min", "default_threads",
    "machine_info", "Runner", "Subject", "bench_embedder", "add_ratios",
]

BACKEND_NAMES = {"torch": "torch", "onnxruntime": "onnxruntime", "ort": "onnxruntime", "tensorrt": "tensorrt",
                 "trt": "tensorrt"}


# --------------------------------------------------------------------------- timing and statistics


@dataclass(frozen=True)
class TimingPolicy:
    """Warm up, then time until `min_runs` runs or `min_seconds` have passed (but never fewer than `floor_runs`)."""

    warmup: int = 3
    min_runs: int = 100
    min_seconds: float = 10.0
    floor_runs: int = 5


FULL = TimingPolicy()
QUICK = TimingPolicy(warmup=1, min_runs=20, min_seconds=2.0, floor_runs=3)


def time_runs(fn: Callable[[], Any], policy: TimingPolicy,
              clock: Callable[[], float] = time.perf_counter) -> tuple[list[float], Any]:
    """Durations (s) of the timed calls of `fn` and the output of the first warm-up call (or the last timed one)."""
    output = None
    for i in range(policy.warmup):
        out = fn()
        output = out if i == 0 else output
    times: list[float] = []
    start = clock()
    while True:
        t0 = clock()
        out = fn()
        times.append(clock() - t0)
        output = out if output is None else output
        runs, elapsed = len(times), clock() - start
        if runs >= policy.min_runs or (elapsed >= policy.min_seconds and runs >= policy.floor_runs):
            return times, output


def latency_stats(times_s: list[float] | np.ndarray, batch: int) -> dict[str, float]:
    """p50/p90/p99/mean latency in ms per batch, and images/s over all the runs (batch * runs / total time)."""
    t = np.asarray(times_s, dtype=np.float64)
    if t.size == 0 or batch < 1:
        raise ValueError("latency_stats needs at least one timing and a batch of at least 1")
    p50, p90, p99 = np.percentile(t, [50, 90, 99]) * 1000.0
    return {"runs": int(t.size), "p50_ms": float(p50), "p90_ms": float(p90), "p99_ms": float(p99),
            "mean_ms": float(t.mean() * 1000.0), "images_per_s": float(batch * t.size / t.sum())}


def cosine_min(a: np.ndarray, b: np.ndarray) -> float:
    """Smallest row-wise cosine similarity between two (N, D) arrays."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    return float(np.min((a * b).sum(axis=1) / np.maximum(na * nb, 1e-12)))


# --------------------------------------------------------------------------- the machine


def default_threads() -> int:
    """Physical cores (what ONNX Runtime and torch should use for one stream of inference)."""
    try:
        import psutil

        return psutil.cpu_count(logical=False) or os.cpu_count() or 1
    except ImportError:
        return os.cpu_count() or 1


def _run(cmd: list[str]) -> str | None:
    if shutil.which(cmd[0]) is None:
        return None
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(module: str) -> str | None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        return None
    try:
        return str(__import__(module).__version__)
    except Exception:  # a broken install (e.g. tensorrt without its libraries) is still worth a line
        return "installed (import failed)"


def machine_info(threads: int) -> dict[str, Any]:
    """CPU, GPU, driver, library versions, Jetson release and power mode, and the load when measuring."""
    info: dict[str, Any] = {
        "cpu": _cpu_model(), "logical_cores": os.cpu_count(), "physical_cores": default_threads(),
        "threads": threads, "load_average": [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "os": platform.platform(), "python": platform.python_version(),
        "versions": {m: _version(m) for m in ("numpy", "torch", "onnxruntime", "openvino", "tensorrt", "cv2")},
        "cpu_flags": cpu_info().summary()["flags"], "cpu_vendor": cpu_info().vendor,
        "gpu": _run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"]),
    }
    try:
        import onnxruntime

        info["onnxruntime_providers"] = list(onnxruntime.get_available_providers())
    except ImportError:
        pass
    tegra = Path("/etc/nv_tegra_release")
    if tegra.is_file():
        info["jetson_release"] = tegra.read_text().splitlines()[0].strip()
        info["jetson_power_mode"] = _run(["nvpmodel", "-q"])
    return info


# --------------------------------------------------------------------------- what is measured


@dataclass
class Runner:
    """One backend/precision/variant: `run(images uint8 NHWC) -> embeddings (N, D)`."""

    backend: str
    precision: str
    variant: str
    device: str
    description: str
    run: Callable[[np.ndarray], np.ndarray]
    close: Callable[[], None] = lambda: None
    stages: Callable[[np.ndarray, int], dict[str, float]] | None = None  # GPU stage split, where available


@dataclass
class Subject:
    """One config to measure: its torch model (random or trained, may be None), its export folder's manifest,
    and the MACs per image of the embedder (hicmd.model.summary's counting)."""

    cfg: Any  # hicmd.config.Config
    manifest: Any  # hicmd.runtime.manifest.Manifest
    model: Any  # HiCMD in eval mode, or None when no checkpoint is at hand
    macs: int | None  # None: unknown (an old export read without torch): no GFLOP/s columns
    weights: str  # "random" or the checkpoint path
    notes: list[str] = field(default_factory=list)


def _torch_runners(model: Any, threads: int, compile_: bool,
                   precisions: list[str]) -> tuple[list[Runner], list[dict[str, str]]]:
    import torch

    from hicmd.export.graphs import EmbedderGraph

    torch.set_num_threads(threads)
    eager = EmbedderGraph(model, "rgb").eval()

    def wrap(module: Any) -> Callable[[np.ndarray], np.ndarray]:
        def run(images: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return module(torch.from_numpy(images))[0].numpy()
        return run

    version = f"torch {torch.__version__} cpu, {threads} threads"
    runners = [Runner("torch", "fp32", "eager", "cpu", f"{version}, EmbedderGraph eager", wrap(eager))]
    # The graph permutes NHWC uint8 to NCHW itself; channels_last also puts the weights in NHWC order.
    last = copy.deepcopy(eager).to(memory_format=torch.channels_last)
    runners.append(Runner("torch", "fp32", "channels_last", "cpu", f"{version}, channels_last weights", wrap(last)))
    skipped = []
    if "bf16" in precisions:
        if cpu_info().bf16:  # AVX512-BF16 / AMX: oneDNN's BF16 kernels under autocast, channels_last
            def autocast(images: np.ndarray) -> np.ndarray:
                with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
                    return last(torch.from_numpy(images))[0].float().numpy()
            runners.append(Runner("torch", "bf16", "autocast", "cpu", f"{version}, bf16 autocast, channels_last",
                                  autocast))
        else:
            skipped.append({"backend": "torch", "precision": "bf16", "variant": "autocast",
                            "status": "skipped: this CPU has no BF16 (AVX512-BF16 / AMX)"})
    if compile_:
        runners.append(Runner("torch", "fp32", "compile", "cpu", f"{version}, torch.compile (inductor)",
                              wrap(torch.compile(eager, dynamic=False))))
    else:
        skipped.append({"backend": "torch", "precision": "fp32", "variant": "compile",
                        "status": "skipped: inductor compiles for minutes per batch shape on a small CPU; "
                                  "pass --compile to include it"})
    return runners, skipped


def _backend_runner(manifest: Any, backend: str, device: str, precision: str, threads: int) -> Runner:
    from hicmd.runtime.backends import open_backend

    opened = open_backend(manifest, "embedder", "rgb", backend=backend, device=device, precision=precision,
                          threads=threads if device == "cpu" else None)
    name = manifest.input.name
    stages = None
    if backend == "tensorrt":
        from hicmd.benchmark_gpu import tensorrt_stages

        stages = lambda images, runs: tensorrt_stages(opened, {name: images}, runs)  # noqa: E731
    return Runner(backend, precision, "default", device, opened.description,
                  lambda images: opened.run({name: images})["embedding"], opened.close, stages)


def _open_runners(subject: Subject, backends: list[str], precisions: list[str], threads: int,
                  compile_: bool) -> tuple[list[Runner], list[dict[str, str]]]:
    """Every backend x precision that can run here; the others as `skipped` records with the reason."""
    from hicmd.runtime.backends import BackendError, cuda_device
    from hicmd.runtime.backends.onnxruntime import available_providers

    runners: list[Runner] = []
    skipped: list[dict[str, str]] = []

    def skip(backend: str, precision: str, variant: str, why: str) -> None:
        skipped.append({"backend": backend, "precision": precision, "variant": variant, "status": f"skipped: {why}"})

    if "torch" in backends and "fp32" in precisions:
        if importlib.util.find_spec("torch") is None:
            skip("torch", "fp32", "eager", "torch is not installed (the edge install): torch rows skipped, parity "
                 "is against ONNX Runtime FP32")
        elif subject.model is None:
            skip("torch", "fp32", "eager", "no checkpoint for this export folder (pass --checkpoint)")
        else:
            more, why = _torch_runners(subject.model, threads, compile_, precisions)
            runners += more
            skipped += why
    plans = []
    graphs = {a.precision for a in subject.manifest.find("embedder", "rgb", format="onnx")}
    if "onnxruntime" in backends:
        for p in precisions:
            if p == "bf16":
                skip("onnxruntime", p, "default", "BF16 inference is OpenVINO's (--backend openvino)")
            elif p == "int8" and p not in graphs:
                skip("onnxruntime", p, "default", "no INT8 graph in the export folder (hicmd export --int8 --calib)")
            else:
                plans.append(("onnxruntime", "cpu", p))
        if "CUDAExecutionProvider" in available_providers():
            plans += [("onnxruntime", "cuda", p) for p in precisions if p in ("fp32", "fp16")]
    if "openvino" in backends:
        for p in precisions:
            if importlib.util.find_spec("openvino") is None:
                skip("openvino", p, "default", "openvino is not installed (pip install hicmd[openvino])")
            elif p == "bf16" and not cpu_info().bf16:
                skip("openvino", p, "default", "this CPU has no BF16 (AVX512-BF16 / AMX)")
            elif (p if p != "bf16" else "fp32") not in graphs:
                skip("openvino", p, "default", f"no {p} graph in the export folder")
            elif p != "fp16":  # an FP16 graph on a CPU runtime is FP32 maths plus casts
                plans.append(("openvino", "cpu", p))
    if "tensorrt" in backends:
        engines = {a.precision for a in subject.manifest.find("embedder", "rgb", format="engine")}
        for p in (p for p in precisions if p != "bf16"):  # TensorRT's precision is the graph's: no BF16 export
            if p not in engines:
                skip("tensorrt", p, "default", f"no {p} engine in the export folder (hicmd export --engine)")
            elif cuda_device() is None:
                skip("tensorrt", p, "default", "no CUDA device or TensorRT on this machine")
            else:
                plans.append(("tensorrt", "cuda", p))
    for backend, device, precision in plans:
        try:
            runners.append(_backend_runner(subject.manifest, backend, device, precision, threads))
        except BackendError as exc:
            skip(backend, precision, "default", str(exc))
    return runners, skipped


def _inputs(subject: Subject, batch: int) -> np.ndarray:
    """The same uint8 NHWC images for every backend at this batch size (seeded by the batch)."""
    spec = subject.manifest.input
    return np.random.default_rng(batch).integers(0, 256, (batch, spec.height, spec.width, 3), dtype=np.uint8)


def _reference(subject: Subject, images: np.ndarray, runners: list[Runner]) -> np.ndarray | None:
    """Torch FP32 eager embeddings of `images` (the parity reference); without torch or a checkpoint, ONNX
    Runtime FP32's; None when neither runs."""
    if subject.model is None:
        ort = next((r for r in runners if (r.backend, r.precision, r.device) == ("onnxruntime", "fp32", "cpu")), None)
        return None if ort is None else ort.run(images)
    import torch

    from hicmd.export.graphs import EmbedderGraph

    with torch.inference_mode():
        return EmbedderGraph(subject.model, "rgb").eval()(torch.from_numpy(images))[0].numpy()


def bench_embedder(subject: Subject, batches: list[int], backends: list[str], precisions: list[str], threads: int,
                   policy: TimingPolicy, peaks: dict[str, Any], compile_: bool = False,
                   progress: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Rows for one config: measured runners x batches, plus one row per skipped backend/variant."""
    name = subject.cfg.name
    runners, skipped = _open_runners(subject, backends, precisions, threads, compile_)
    rows: list[dict[str, Any]] = [{"config": name, "device": "-", "batch": None, **s} for s in skipped]
    try:
        for batch in batches:
            images = _inputs(subject, batch)
            reference = _reference(subject, images, runners)
            for runner in runners:
                if progress:
                    progress(f"{name} {runner.backend} {runner.precision} {runner.variant} batch {batch}")
                row = {"config": name, "backend": runner.backend, "precision": runner.precision,
                       "variant": runner.variant, "device": runner.device, "batch": batch,
                       "description": runner.description}
                try:
                    times, out = time_runs(lambda: runner.run(images), policy)
                except Exception as exc:  # a backend that fails at run time is reported, not fatal
                    rows.append({**row, "status": f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"})
                    continue
                stats = latency_stats(times, batch)
                gflops = 2.0 * subject.macs * stats["images_per_s"] / 1e9 if subject.macs else None
                peak = peaks.get(peak_class(runner.precision, runner.device)) or {}
                row.update(status="ok", **stats, gflops=gflops,
                           peak_fraction=gflops / peak["gflops"] if gflops and peak.get("gflops") else None,
                           parity_cosine=None if reference is None else cosine_min(out, reference))
                if runner.stages is not None:
                    row["stages_ms"] = runner.stages(images, max(policy.floor_runs, 10))
                rows.append(row)
    finally:
        for runner in runners:
            runner.close()
    return rows


def add_ratios(rows: list[dict[str, Any]]) -> None:
    """`speedup_vs_eager` = torch eager FP32 p50 / this row's p50, at the same config and batch (in place)."""
    eager = {(r["config"], r["batch"]): r["p50_ms"] for r in rows
             if r.get("status") == "ok" and r["backend"] == "torch" and r["variant"] == "eager"}
    for r in rows:
        base = eager.get((r["config"], r["batch"]))
        if r.get("status") == "ok":
            r["speedup_vs_eager"] = base / r["p50_ms"] if base else None
