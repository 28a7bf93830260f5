"""TensorRT engine builds from the exported ONNX graphs (docs/reference/deployment.md §2-3), kept thin.

- TensorRT 11.x is strongly typed only: the precision is the graph's, so FP16 engines come from `*.fp16.onnx`.
- TensorRT 10.x: the same strongly typed build (STRONGLY_TYPED network flag); `weak_fp16=True` is the documented
  fallback, FP32 graph + BuilderFlag.FP16 (weak typing, deprecated in 10.12, removed in 11).
- One optimisation profile over the batch axis; a workspace pool limit; a timing cache file reused across builds.
- After each build the engine inspector (profiling verbosity DETAILED) reports every layer's output formats; an FP16
  request whose engine has no FP16 layer raises EngineError (TensorRT 11 silently builds FP32 from an FP32 graph).
- INT8: explicit quantization from the Q/DQ graph in its TensorRT form (`*.int8.trt.onnx`, hicmd.export.int8
  `tensorrt_int8`), strongly typed on 10.x and 11.x alike, no INT8 flag or calibrator; after the build every
  convolution layer must take INT8 input, or EngineError names the ones TensorRT left in float.

Engines are not portable: they are tied to the GPU (compute capability) and the TensorRT version that built them.
"""

from __future__ import annotations

import json
import shlex
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hicmd.errors import HicmdError
from hicmd.runtime.atomic import write_atomically

__all__ = ["EngineError", "BuiltEngine", "tensorrt_problem", "trtexec_command", "build_engine", "layer_precisions"]

Shapes = dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]  # name -> (min, opt, max)


class EngineError(HicmdError, RuntimeError):
    """A TensorRT build that failed or produced the wrong precision."""


@dataclass(frozen=True)
class BuiltEngine:
    path: Path
    version: str
    gpu: str
    compute_capability: str
    precisions: dict[str, int]  # layer count per output precision (fp16, fp32, int, other)
    strongly_typed: bool


def tensorrt_problem() -> str | None:
    """Why engines cannot be built here (one line), or None when tensorrt and a CUDA device are present."""
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return ("the tensorrt Python package is not installed (pip install hicmd[trt], or build on the target "
                "with trtexec)")
    from hicmd.runtime.backends.cuda import cuda_device

    if cuda_device() is None:
        return ("no CUDA device is visible (or cuda-bindings is missing: pip install hicmd[trt]); build on the "
                "target GPU with trtexec")
    return None


def _dims(shape: tuple[int, ...]) -> str:
    return "x".join(str(d) for d in shape)


def trtexec_command(onnx_file: str, engine_file: str, shapes: Shapes, timing_cache: str = "timing.cache",
                    workspace_gb: float = 2.0, weak_fp16: bool = False) -> str:
    """The trtexec line that builds the same engine on the target (run it inside the export folder)."""
    names = list(shapes)
    parts = ["trtexec", f"--onnx={onnx_file}", f"--saveEngine={engine_file}",
             "--fp16" if weak_fp16 else "--stronglyTyped"]
    for flag, k in (("--minShapes", 0), ("--optShapes", 1), ("--maxShapes", 2)):
        parts.append(f"{flag}=" + ",".join(f"{n}:{_dims(shapes[n][k])}" for n in names))
    parts += [f"--memPoolSize=workspace:{int(workspace_gb * 1024)}M", f"--timingCacheFile={timing_cache}"]
    return " ".join(shlex.quote(p) for p in parts)


def _precision_of(fmt: str) -> str:
    text = fmt.lower()
    if "int8" in text:
        return "int8"
    if "half" in text or "fp16" in text:
        return "fp16"
    if "float" in text or "fp32" in text:
        return "fp32"
    if "int" in text or "bool" in text:
        return "int"
    return "other"


def layer_precisions(info: dict[str, Any]) -> dict[str, int]:
    """Count layers by the precision of their first output, from get_engine_information(JSON) at DETAILED
    verbosity (each layer: {"Outputs": [{"Format/Datatype": "...Half..." | "...Float..."}]})."""
    counts: Counter[str] = Counter()
    for layer in info.get("Layers", []):
        if not isinstance(layer, dict):  # non-DETAILED engines list bare names
            counts["unknown"] += 1
            continue
        outputs = layer.get("Outputs") or []
        fmt = outputs[0].get("Format/Datatype", "") if outputs and isinstance(outputs[0], dict) else ""
        counts[_precision_of(fmt)] += 1
    return dict(counts)


def float_convolutions(info: dict[str, Any], expected: Collection[str] = ()) -> list[str]:
    """Convolution layers of an engine whose input is not INT8 (inspector JSON at DETAILED verbosity), except
    those named after an `expected` node (the convolutions the Q/DQ graph itself keeps float)."""
    found = []
    for layer in info.get("Layers", []):
        if not isinstance(layer, dict) or any(name in str(layer.get("Name", "")) for name in expected):
            continue
        if "convolution" in str(layer.get("LayerType", "")).lower():
            inputs = layer.get("Inputs") or []
            fmt = inputs[0].get("Format/Datatype", "") if inputs and isinstance(inputs[0], dict) else ""
            if _precision_of(fmt) != "int8":
                found.append(f"{layer.get('Name', '?')} ({fmt or 'format unknown'})")
    return found


def build_engine(onnx_path: Path, engine_path: Path, shapes: Shapes, *, fp16: bool, workspace_gb: float = 2.0,
                 timing_cache: Path | None = None, weak_fp16: bool = False, int8: bool = False,
                 float_ok: Collection[str] = ()) -> BuiltEngine:
    """Parse, build, save and inspect one engine. Raises EngineError with the parser/builder's own words.
    `float_ok`: convolutions an INT8 graph keeps float on purpose (hicmd.export.int8_mixed)."""
    import tensorrt as trt
    from hicmd.runtime.backends.cuda import cuda_device

    major = int(trt.__version__.split(".")[0])
    if weak_fp16 and major >= 11:
        raise EngineError(f"TensorRT {trt.__version__} has no weak typing (BuilderFlag.FP16 was removed in 11); "
                          "build from the FP16 ONNX instead (drop --trt-weak-fp16)")
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    strongly = not weak_fp16
    if strongly and hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):  # 11.x: default, flag ignored
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineError(f"TensorRT {trt.__version__} could not parse {onnx_path.name}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    if weak_fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    for name, (low, opt, high) in shapes.items():
        profile.set_shape(name, low, opt, high)
    config.add_optimization_profile(profile)
    cache_bytes = timing_cache.read_bytes() if timing_cache and timing_cache.is_file() else b""
    try:  # a cache from another TensorRT version or GPU (an export folder copied over) is refused: start empty
        cache = config.create_timing_cache(cache_bytes)
        usable = cache is not None and config.set_timing_cache(cache, ignore_mismatch=False)
    except (RuntimeError, TypeError):
        usable = False
    if not usable:
        config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise EngineError(f"TensorRT {trt.__version__} failed to build {engine_path.name} (see the log above)")
    write_atomically(engine_path, bytes(plan))
    if timing_cache is not None:  # a cache cut short by a kill would fail the next build that reads it
        write_atomically(timing_cache, bytes(config.get_timing_cache().serialize()))
    engine = trt.Runtime(logger).deserialize_cuda_engine(bytes(plan))
    if engine is None:
        raise EngineError(f"the engine just built ({engine_path.name}) does not deserialise")
    info = json.loads(engine.create_engine_inspector().get_engine_information(trt.LayerInformationFormat.JSON))
    precisions = layer_precisions(info)
    if int8:
        floats = float_convolutions(info, float_ok)
        if floats or not precisions.get("int8"):
            raise EngineError(f"{engine_path.name}: the Q/DQ graph asks for INT8 convolutions but TensorRT "
                              f"{trt.__version__} runs {len(floats)} in float ({'; '.join(floats[:3]) or precisions})")
    if fp16 and not precisions.get("fp16"):
        raise EngineError(f"{engine_path.name}: FP16 was requested but the engine has no FP16 layer "
                          f"({precisions}); TensorRT built it in FP32 - check the FP16 graph / flags")
    gpu = cuda_device() or ("unknown", "unknown")
    return BuiltEngine(engine_path, trt.__version__, gpu[0], gpu[1], precisions, strongly)
