"""TensorRT engines of an export (hicmd.export.pipeline calls `build_engines` with --engine): FP32 / FP16 plans of
the three graphs, with --int8 the embedders' INT8 plans from the Q/DQ graphs' TensorRT form, then their parity against
PyTorch. TensorRT runs only on a GPU machine: without one the tests check the trtexec lines and what is done around
a faked builder; the builder calls themselves are thin (hicmd.export.tensorrt)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from hicmd.export import parity as P
from hicmd.export.pipeline import (EMBEDDERS, ENGINE_NOTE, GRAPHS, TIMING_CACHE, ExportOptions, ExportResult,
                                   artifact_entry, engine_shapes, graph_file, parity_crops, verify)
from hicmd.runtime.manifest import Artifact

__all__ = ["build_engines", "int8_engines"]


def build_engines(model, cfg, out: Path, options: ExportOptions, result: ExportResult,
                  step: Callable[[str], None]) -> list[Artifact]:
    """The FP32 / FP16 engines of the three graphs (and with --int8 the embedders' INT8 ones), then their parity
    against PyTorch; without TensorRT or a GPU only the trtexec lines, and `result.engine_problem` says why."""
    from hicmd.export.tensorrt import build_engine, tensorrt_problem, trtexec_command

    precision = "fp16" if (options.fp16 or options.weak_fp16) else "fp32"
    source = "fp32" if options.weak_fp16 else precision
    result.trtexec = [trtexec_command(graph_file(g, source), graph_file(g, precision, "engine"),
                                      engine_shapes(cfg, g, options.batch), TIMING_CACHE, options.workspace_gb,
                                      options.weak_fp16) for g in GRAPHS]
    if options.int8:  # the Q/DQ graphs in the form TensorRT parses, for the builder here or trtexec on the target
        from hicmd.export.int8 import write_tensorrt_form

        forms = [write_tensorrt_form(out / graph_file(g, "int8")) for g in EMBEDDERS]
        result.files += forms
        result.trtexec += [trtexec_command(f.name, graph_file(g, "int8", "engine"),
                                           engine_shapes(cfg, g, options.batch), TIMING_CACHE, options.workspace_gb)
                           for g, f in zip(EMBEDDERS, forms)]
    result.engine_problem = tensorrt_problem()
    if result.engine_problem:
        return []
    artifacts = []
    for g in GRAPHS:
        step(f"building TensorRT engine {graph_file(g, precision, 'engine')}")
        path = out / graph_file(g, precision, "engine")
        built = build_engine(out / graph_file(g, source), path, engine_shapes(cfg, g, options.batch),
                             fp16=precision == "fp16", workspace_gb=options.workspace_gb,
                             timing_cache=out / TIMING_CACHE, weak_fp16=options.weak_fp16)
        result.files.append(path)
        info = {"version": built.version, "gpu": built.gpu, "compute_capability": built.compute_capability,
                "profile": dict(zip(("min", "opt", "max"), options.batch)), "strongly_typed": built.strongly_typed,
                "layer_precisions": built.precisions, "portable": False, "note": ENGINE_NOTE}
        artifacts.append(artifact_entry(cfg, g, precision, "engine", path, info))
    if options.int8:
        artifacts += int8_engines(cfg, out, options, result, step)
    if options.verify:
        from hicmd.runtime.backends.tensorrt import TensorRTBackend

        step("parity: TensorRT engines vs PyTorch")
        opened: list[TensorRTBackend] = []

        def runner(path: Path):
            opened.append(TensorRTBackend(path))
            return opened[-1].run

        try:
            built = [precision] + (["int8"] if options.int8 else [])
            gates, metrics = verify(model, out, built, parity_crops(cfg, options), runner, fmt="engine")
        finally:
            for backend in opened:
                backend.close()
        result.gates += [P.Gate(f"{g.artifact}.engine", g.metric, g.value, g.threshold, g.op) for g in gates]
        result.parity["engine"] = metrics
    return artifacts


def int8_engines(cfg: Any, out: Path, options: ExportOptions, result: ExportResult,
                 step: Callable[[str], None]) -> list[Artifact]:
    """INT8 engines of the embedders from the Q/DQ graphs' TensorRT form (`*.int8.trt.onnx`)."""
    import onnx

    from hicmd.export.int8_mixed import float_convolutions_of
    from hicmd.export.tensorrt import build_engine

    artifacts = []
    for g in EMBEDDERS:
        step(f"building TensorRT engine {graph_file(g, 'int8', 'engine')} (explicit quantization)")
        source, path = out / f"{g}.int8.trt.onnx", out / graph_file(g, "int8", "engine")
        built = build_engine(source, path, engine_shapes(cfg, g, options.batch), fp16=False, int8=True,
                             workspace_gb=options.workspace_gb, timing_cache=out / TIMING_CACHE,
                             float_ok=float_convolutions_of(onnx.load(str(source))))
        result.files.append(path)
        info = {"version": built.version, "gpu": built.gpu, "compute_capability": built.compute_capability,
                "profile": dict(zip(("min", "opt", "max"), options.batch)), "strongly_typed": True,
                "layer_precisions": built.precisions, "source": source.name, "portable": False, "note": ENGINE_NOTE}
        artifacts.append(artifact_entry(cfg, g, "int8", "engine", path, info))
    return artifacts
