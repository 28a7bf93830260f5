"""A Triton Inference Server model repository from an export folder (`hicmd export --triton DIR`).

One Triton model per embedder artifact in manifest.json (FP32 / FP16 / INT8 ONNX graphs, TensorRT plans):

    DIR/hicmd_rgb/config.pbtxt        DIR/hicmd_rgb/1/model.onnx
    DIR/hicmd_ir_fp16/config.pbtxt    DIR/hicmd_ir_fp16/1/model.onnx
    DIR/hicmd_rgb_fp16_engine/...     DIR/hicmd_rgb_fp16_engine/1/model.plan

Inputs stay what the graphs take (uint8 NHWC RGB, normalisation inside), so a client sends raw crops. Dynamic
batching and instance groups are set in each config.pbtxt. Needs only the manifest and the files: no torch, no onnx.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from hicmd.runtime.backends.triton import model_name
from hicmd.runtime.manifest import Artifact, Manifest, TensorSpec, load_manifest

__all__ = ["TritonOptions", "model_name", "config_pbtxt", "write_triton_repository"]

_TYPES = {"uint8": "TYPE_UINT8", "int8": "TYPE_INT8", "float32": "TYPE_FP32", "float16": "TYPE_FP16",
          "int32": "TYPE_INT32", "int64": "TYPE_INT64"}


class TritonOptions:
    """max_batch: the largest batch Triton forms (<= the engine profile's max for plans); instances: model copies per
    GPU (or CPU cores with kind KIND_CPU); delay_us: how long the dynamic batcher waits to fill a batch."""

    def __init__(self, max_batch: int = 32, instances: int = 1, kind: str = "KIND_GPU", delay_us: int = 2000,
                 preferred: tuple[int, ...] = (8, 32)) -> None:
        if max_batch < 1 or instances < 1 or delay_us < 0 or kind not in ("KIND_GPU", "KIND_CPU"):
            raise ValueError("Triton: max batch and instances must be >= 1, delay >= 0, kind KIND_GPU or KIND_CPU")
        self.max_batch, self.instances, self.kind, self.delay_us = max_batch, instances, kind, delay_us
        self.preferred = tuple(sorted({b for b in preferred if b <= max_batch} | {max_batch}))


def _tensor(spec: TensorSpec, image: bool) -> str:
    if spec.dtype not in _TYPES:
        raise ValueError(f"Triton: no data type for {spec.name} ({spec.dtype})")
    dims = ", ".join(str(d) for d in spec.shape[1:])  # the batch axis is Triton's (max_batch_size > 0)
    layout = "\n    format: FORMAT_NHWC" if image else ""
    return f'  {{\n    name: "{spec.name}"\n    data_type: {_TYPES[spec.dtype]}{layout}\n    dims: [ {dims} ]\n  }}'


def config_pbtxt(manifest: Manifest, artifact: Artifact, options: TritonOptions) -> str:
    """The model configuration (protobuf text format of Triton's ModelConfig) for one embedder artifact."""
    platform, filename = ("tensorrt_plan", "model.plan") if artifact.format == "engine" else \
        ("onnxruntime_onnx", "model.onnx")
    inputs = ",\n".join(_tensor(s, image=s.name == manifest.input.name and len(s.shape) == 4) for s in artifact.inputs)
    outputs = ",\n".join(_tensor(s, image=False) for s in artifact.outputs)
    preferred = ", ".join(map(str, options.preferred))
    return (f'# hicmd {artifact.name}: {artifact.modality} embedder, {artifact.precision}, from {artifact.file}\n'
            f'# input: {manifest.input.color} uint8 crops resized to {manifest.input.height}x{manifest.input.width} '
            f'({manifest.input.resize}, hicmd.runtime.resize), '
            f'NHWC; normalisation is inside the graph\n'
            f'name: "{model_name(artifact)}"\n'
            f'platform: "{platform}"\n'
            f'default_model_filename: "{filename}"\n'
            f'max_batch_size: {options.max_batch}\n'
            f'input [\n{inputs}\n]\n'
            f'output [\n{outputs}\n]\n'
            f'dynamic_batching {{\n  preferred_batch_size: [ {preferred} ]\n'
            f'  max_queue_delay_microseconds: {options.delay_us}\n}}\n'
            f'instance_group [\n  {{\n    count: {options.instances}\n    kind: {options.kind}\n  }}\n]\n'
            f'parameters {{\n  key: "hicmd_embedding_dim"\n'
            f'  value: {{ string_value: "{manifest.embedding_dim}" }}\n}}\n')


def _engine_max_batch(artifact: Artifact) -> int | None:
    profile = (artifact.tensorrt or {}).get("profile")  # {"min": 1, "opt": 8, "max": 32}, written by export
    return int(profile["max"]) if isinstance(profile, dict) and "max" in profile else None


def write_triton_repository(export_dir: str | Path, out: str | Path,
                            options: TritonOptions | None = None) -> list[str]:
    """Write one Triton model per embedder artifact into `out`; returns the model names. Each model folder is
    written into a temporary folder and moved into place, so a crash never leaves a half-written model."""
    options = options or TritonOptions()
    manifest = load_manifest(export_dir)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = []
    for artifact in manifest.artifacts:
        if artifact.role != "embedder" or artifact.format == "openvino":  # an IR is OpenVINO's, not Triton's ONNX
            continue
        opts = options
        engine_max = _engine_max_batch(artifact) if artifact.format == "engine" else None
        if engine_max is not None and engine_max < options.max_batch:  # Triton would ask the plan for more
            opts = TritonOptions(engine_max, options.instances, options.kind, options.delay_us, options.preferred)
        name = model_name(artifact)
        staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=out))
        try:
            (staging / "1").mkdir()
            shutil.copyfile(manifest.path(artifact),
                            staging / "1" / ("model.plan" if artifact.format == "engine" else "model.onnx"))
            (staging / "config.pbtxt").write_text(config_pbtxt(manifest, artifact, opts))
            target = out / name
            if target.exists():
                shutil.rmtree(target)
            os.replace(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        names.append(name)
    if not names:
        raise ValueError(f"{export_dir}: manifest.json has no embedder to serve")
    return names
