"""The embedder matrix: every backend x precision x variant that can run here, at each batch size, with its
latency, ratio to torch eager, GFLOP/s, % of this machine's peak for its precision and parity cosine.

Torch is optional: without it the torch rows are skipped with a note and parity is measured against ONNX Runtime
FP32. Latency is the wall time of one `run` call for a batch; throughput is images per second over all timed runs.
"""

from __future__ import annotations

import copy
import importlib.util
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from hicmd.bench.peaks import peak_class
from hicmd.bench.rows import EmbedderRow, Peak
from hicmd.bench.subjects import Subject
from hicmd.bench.timing import TimingPolicy, cosine_min, latency_stats, time_runs
from hicmd.runtime.cpu import cpu_info

__all__ = ["Runner", "bench_embedder", "add_ratios"]


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


def _torch_runners(model: Any, threads: int, compile_: bool, precisions: list[str],
                   skip: Callable[[str, str, str, str], None]) -> list[Runner]:
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
    if "bf16" in precisions:
        if cpu_info().bf16:  # AVX512-BF16 / AMX: oneDNN's BF16 kernels under autocast, channels_last
            def autocast(images: np.ndarray) -> np.ndarray:
                with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
                    return last(torch.from_numpy(images))[0].float().numpy()
            runners.append(Runner("torch", "bf16", "autocast", "cpu", f"{version}, bf16 autocast, channels_last",
                                  autocast))
        else:
            skip("torch", "bf16", "autocast", "this CPU has no BF16 (AVX512-BF16 / AMX)")
    if compile_:
        runners.append(Runner("torch", "fp32", "compile", "cpu", f"{version}, torch.compile (inductor)",
                              wrap(torch.compile(eager, dynamic=False))))
    else:
        skip("torch", "fp32", "compile", "inductor compiles for minutes per batch shape on a small CPU; "
             "pass --compile to include it")
    return runners


def _backend_runner(manifest: Any, backend: str, device: str, precision: str, threads: int) -> Runner:
    from hicmd.runtime.backends import open_backend

    opened = open_backend(manifest, "embedder", "rgb", backend=backend, device=device, precision=precision,
                          threads=threads if device == "cpu" else None)
    name = manifest.input.name
    stages = None
    if backend == "tensorrt":
        from hicmd.bench.gpu import tensorrt_stages

        stages = lambda images, runs: tensorrt_stages(opened, {name: images}, runs)  # noqa: E731
    variant = "default"
    if (backend, precision) == ("openvino", "int8"):  # OpenVINO's own INT8 IR (NNCF) when the export has it
        variant = "nncf" if manifest.find("embedder", "rgb", "int8", "openvino") else "qdq"
    return Runner(backend, precision, variant, device, opened.description,
                  lambda images: opened.run({name: images})["embedding"], opened.close, stages)


def _openvino_qdq_runner(manifest: Any, threads: int) -> Runner:
    """OpenVINO on the Q/DQ graph, beside its own INT8 IR (which `open_backend` prefers): the two side by side."""
    from hicmd.runtime.backends.openvino import OpenVinoBackend

    opened = OpenVinoBackend(manifest.verified_path(manifest.pick("embedder", "rgb", "int8", "onnx")), threads=threads)
    name = manifest.input.name
    return Runner("openvino", "int8", "qdq", "cpu", f"{opened.description} [int8: the Q/DQ graph]",
                  lambda images: opened.run({name: images})["embedding"], opened.close)


def _open_runners(subject: Subject, backends: list[str], precisions: list[str], threads: int,
                  compile_: bool) -> tuple[list[Runner], list[EmbedderRow]]:
    """Every backend x precision that can run here; the others as skipped rows with the reason."""
    from hicmd.runtime.backends import BackendError
    from hicmd.runtime.backends.cuda import cuda_device
    from hicmd.runtime.backends.onnxruntime import available_providers

    runners: list[Runner] = []
    skipped: list[EmbedderRow] = []

    def skip(backend: str, precision: str, variant: str, why: str) -> None:
        skipped.append(EmbedderRow.skipped(subject.cfg.name, backend, precision, variant, why))

    if "torch" in backends and "fp32" in precisions:
        if importlib.util.find_spec("torch") is None:
            skip("torch", "fp32", "eager", "torch is not installed (the edge install): torch rows skipped, parity "
                 "is against ONNX Runtime FP32")
        elif subject.model is None:
            skip("torch", "fp32", "eager", "no checkpoint for this export folder (pass --checkpoint)")
        else:
            runners += _torch_runners(subject.model, threads, compile_, precisions, skip)
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
            if runners[-1].variant == "nncf":
                runners.append(_openvino_qdq_runner(subject.manifest, threads))
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
                   policy: TimingPolicy, compile_: bool = False,
                   progress: Callable[[str], None] | None = None) -> list[EmbedderRow]:
    """Rows for one config: measured runners x batches, plus one row per skipped backend/variant. `peak_fraction`
    is left to the caller, which knows the peaks once the timings are done (`peak_fraction`)."""
    name = subject.cfg.name
    runners, rows = _open_runners(subject, backends, precisions, threads, compile_)
    try:
        for batch in batches:
            images = _inputs(subject, batch)
            reference = _reference(subject, images, runners)
            for runner in runners:
                if progress:
                    progress(f"{name} {runner.backend} {runner.precision} {runner.variant} batch {batch}")
                row = EmbedderRow(name, runner.backend, runner.precision, runner.variant, runner.device, batch,
                                  description=runner.description)
                rows.append(row)
                try:
                    times, out = time_runs(lambda: runner.run(images), policy)
                except Exception as exc:  # a backend that fails at run time is reported, not fatal
                    row.status = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
                    continue
                row.timed(latency_stats(times, batch))
                row.gflops = 2.0 * subject.macs * row.images_per_s / 1e9 if subject.macs else None
                row.parity_cosine = None if reference is None else cosine_min(out, reference)
                if runner.stages is not None:
                    row.stages_ms = runner.stages(images, max(policy.floor_runs, 10))
    finally:
        for runner in runners:
            runner.close()
    return rows


def peak_fraction(row: EmbedderRow, peaks: dict[str, Peak | None]) -> float | None:
    """GFLOP/s over this machine's peak for the row's precision (INT8 and BF16 CPU rows: theirs; others: sgemm)."""
    peak = peaks.get(peak_class(row.precision, row.device))
    return row.gflops / peak.gflops if row.gflops and peak else None


def add_ratios(rows: list[EmbedderRow]) -> None:
    """`speedup_vs_eager` = torch eager FP32 p50 / this row's p50, at the same config and batch (in place)."""
    eager = {(r.config, r.batch): r.p50_ms for r in rows if r.ok and r.backend == "torch" and r.variant == "eager"}
    for r in rows:
        base = eager.get((r.config, r.batch))
        if r.ok and base and r.p50_ms:
            r.speedup_vs_eager = base / r.p50_ms
