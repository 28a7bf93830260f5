"""The INT8 stages of `hicmd export --int8` that run after the graphs are written (hicmd.export.pipeline calls
them): the R1 / mAP gates under the dataset's protocol, and the INT8 TensorRT engines of the embedders."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from hicmd.export.parity import Gate

__all__ = ["protocol_stage", "engine_stage"]


def protocol_stage(cfg: Any, out: Path, options: Any, result: Any, step: Callable[[str], None]) -> list[Gate]:
    """R1 / mAP of the INT8 graphs vs FP32 under the dataset's protocol, when `--data` (else `--calib`) has a
    test split; recorded either way."""
    from hicmd.data import DataError
    from hicmd.export.int8_gates import protocol_gates

    spec = options.data or options.int8.calib
    step(f"INT8: R1 / mAP vs FP32 under the {spec.split(':')[0]} protocol")
    try:
        gates, scores = protocol_gates(spec, out, "int8", options.int8.max_drop, cfg.model.height, cfg.model.width)
    except DataError as exc:
        result.parity["int8"]["protocol"] = {"note": f"not measured: {exc}"}
        return []
    scores["gates"] = [{"artifact": g.artifact, "metric": g.metric, "value": g.value, "threshold": g.threshold,
                        "passed": g.passed} for g in gates]
    result.parity["int8"]["protocol"] = scores
    return gates


def engine_stage(cfg: Any, out: Path, options: Any, result: Any, step: Callable[[str], None]) -> list[Any]:
    """INT8 engines of the embedders from the Q/DQ graphs' TensorRT form (`*.int8.trt.onnx`)."""
    import onnx

    from hicmd.export.int8_mixed import float_convolutions_of
    from hicmd.export.pipeline import EMBEDDERS, ENGINE_NOTE, TIMING_CACHE, _artifact, _file, engine_shapes
    from hicmd.export.tensorrt import build_engine

    artifacts = []
    for g in EMBEDDERS:
        step(f"building TensorRT engine {_file(g, 'int8', 'engine')} (explicit quantization)")
        source, path = out / f"{g}.int8.trt.onnx", out / _file(g, "int8", "engine")
        built = build_engine(source, path, engine_shapes(cfg, g, options.batch), fp16=False, int8=True,
                             workspace_gb=options.workspace_gb, timing_cache=out / TIMING_CACHE,
                             float_ok=float_convolutions_of(onnx.load(str(source))))
        result.files.append(path)
        info = {"version": built.version, "gpu": built.gpu, "compute_capability": built.compute_capability,
                "profile": dict(zip(("min", "opt", "max"), options.batch)), "strongly_typed": True,
                "layer_precisions": built.precisions, "source": source.name, "portable": False, "note": ENGINE_NOTE}
        artifacts.append(_artifact(cfg, g, "int8", "engine", path, info))
    return artifacts
