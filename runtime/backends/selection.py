"""Which backend runs a manifest artifact (`open_backend`): the `auto` order, the engine/GPU compatibility checks,
the input-shape check against the manifest, and the one-line reason each choice gives. Torch-free."""

from __future__ import annotations

import importlib.util
import logging
import sys
from pathlib import Path

from ..manifest import Artifact, Manifest, ManifestError, sha256_file
from .base import Backend, BackendError
from .cuda import cuda_device

__all__ = ["open_backend", "BACKENDS", "DEVICES", "PRECISIONS"]

BACKENDS = ("auto", "tensorrt", "onnxruntime", "openvino", "torch", "triton")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "fp16", "int8", "bf16")
log = logging.getLogger("hicmd.runtime")


def _has_tensorrt() -> bool:
    if "tensorrt" in sys.modules:  # already imported (or stubbed out with None)
        return sys.modules["tensorrt"] is not None
    return importlib.util.find_spec("tensorrt") is not None


def _ort_has_cuda() -> bool:
    from .onnxruntime import available_providers

    return "CUDAExecutionProvider" in available_providers()


def _pick(manifest: Manifest, role: str, modality: str | None, precision: str, fmt: str,
          prefer: tuple[str, ...]) -> Artifact:
    """The artifact for `precision`, or for `auto` the first precision in `prefer` that the manifest has."""
    order = prefer if precision == "auto" else (precision,)
    for p in order:
        found = manifest.find(role, modality, p, fmt)
        if found:
            return found[0]
    try:
        return manifest.pick(role, modality, order[-1], fmt)  # raises with what the folder does hold
    except ManifestError as exc:
        raise BackendError(str(exc)) from None


def _engine_problem(artifact: Artifact, gpu: tuple[str, str] | None) -> str | None:
    """Why this engine cannot run here (manifest's tensorrt record vs installed TensorRT and GPU), or None."""
    from .tensorrt import short_version

    info = artifact.tensorrt or {}
    if gpu is None:
        return "no CUDA device is visible"
    import tensorrt

    if info.get("version") and short_version(info["version"]) != short_version(tensorrt.__version__):
        return f"{artifact.file} was built with TensorRT {info['version']}, this machine has {tensorrt.__version__}"
    if info.get("compute_capability") and str(info["compute_capability"]) != gpu[1]:
        return (f"{artifact.file} was built for compute capability {info['compute_capability']} "
                f"({info.get('gpu', '?')}), this GPU is {gpu[0]} ({gpu[1]})")
    return None


def _check_shapes(backend: Backend, manifest: Manifest, role: str, file: str) -> None:
    """The graph/engine's input shapes must be the manifest's, or crops would be resized to the wrong size."""
    if role == "embedder":
        spec = manifest.input
        expected = {spec.name: (spec.height, spec.width, 3)}
    elif role == "generator":
        expected = {"prototype": tuple(manifest.prototype_shape), "attribute": (manifest.attribute_dim,)}
    else:
        return
    for name, want in expected.items():
        have = backend.input_shapes.get(name)
        if have is None:
            raise BackendError(f"{file} has no input {name!r} (inputs: {', '.join(backend.input_shapes)}); "
                               f"re-export the model")
        if tuple(have[1:]) != want:
            raise BackendError(f"{file} input {name} has shape {tuple(have)} but manifest.json says "
                               f"(N, {', '.join(map(str, want))}); re-export the model")


def open_backend(manifest: Manifest, artifact_role: str, modality: str | None = None, backend: str = "auto",
                 device: str = "auto", precision: str = "auto", threads: int | None = None,
                 url: str | None = None) -> Backend:
    """Open the artifact (`embedder` + rgb/ir, or `generator`) on the chosen backend; BackendError says why not.
    `url` is the Triton server for backend "triton"."""
    for value, allowed, what in ((backend, BACKENDS, "backend"), (device, DEVICES, "device"),
                                 (precision, PRECISIONS, "precision")):
        if value not in allowed:
            raise BackendError(f"unknown {what} {value!r}; use one of {', '.join(allowed)}")
    if backend == "torch":
        return _open_torch(manifest, artifact_role, modality, device)
    if backend == "triton":
        return _open_triton(manifest, artifact_role, modality, precision, url)
    if url:  # a server address the run would otherwise ignore: the user meant Triton
        raise BackendError(f"--url is the Triton server's address: it needs --backend triton (not {backend})")
    if backend == "openvino":
        if device == "cuda":
            raise BackendError("--backend openvino runs on the CPU here; drop --device cuda")
        return _open_openvino(manifest, artifact_role, modality, precision, threads, [])

    notes: list[str] = []
    if backend in ("auto", "tensorrt") and device != "cpu":
        if backend == "tensorrt" or _can_try_tensorrt(manifest, artifact_role, modality, precision, notes):
            return _open_tensorrt(manifest, artifact_role, modality, precision, strict=backend == "tensorrt")
    if backend == "tensorrt":
        raise BackendError("the TensorRT backend needs a CUDA device; drop --device cpu or use --backend onnxruntime")

    if device == "cpu":
        ort_device = "cpu"
    elif _ort_has_cuda():
        ort_device = "cuda"
    elif device == "cuda":
        raise BackendError("--device cuda: ONNX Runtime has no CUDAExecutionProvider here (install onnxruntime-gpu) "
                           "and TensorRT is not usable; use --device cpu")
    else:
        ort_device = "cpu"
    if backend == "auto" and ort_device == "cpu":
        from .choice import openvino_choice

        # OpenVINO's own INT8 IR is in the folder only when it passed export's gates
        use, why = openvino_choice(precision == "int8" and bool(manifest.find(artifact_role, modality, "int8",
                                                                              "openvino")))
        if use:
            return _open_openvino(manifest, artifact_role, modality, precision, threads, [why])
        notes.append(why)
    if precision == "bf16":
        raise BackendError("--precision bf16 is OpenVINO's inference of the FP32 graph: add --backend openvino "
                           "(pip install hicmd[openvino])")
    # FP16 graphs pay for Cast nodes on the CPU provider, so auto takes FP32 there and FP16 on a GPU.
    prefer = ("fp16", "fp32") if ort_device == "cuda" else ("fp32", "fp16")
    artifact = _pick(manifest, artifact_role, modality, precision, "onnx", prefer)
    from .onnxruntime import OnnxRuntimeBackend

    return _finish(OnnxRuntimeBackend(_existing(manifest, artifact), device=ort_device, threads=threads),
                   manifest, artifact_role, modality, artifact.file, notes)


def _can_try_tensorrt(manifest: Manifest, role: str, modality: str | None, precision: str,
                      notes: list[str]) -> bool:
    if not _has_tensorrt():
        return False
    engines = manifest.find(role, modality, None if precision == "auto" else precision, "engine")
    if not engines:
        notes.append(f"no {'' if precision == 'auto' else precision + ' '}TensorRT engine in the manifest")
        return False
    gpu = cuda_device()
    problems = [_engine_problem(e, gpu) for e in engines]
    if all(problems):
        notes.append(f"TensorRT skipped: {problems[0]}")
        return False
    return True


def _open_tensorrt(manifest: Manifest, role: str, modality: str | None, precision: str, strict: bool) -> Backend:
    if not _has_tensorrt():
        raise BackendError("--backend tensorrt: the tensorrt package is not installed (pip install tensorrt "
                           "cuda-bindings, or JetPack's python3-libnvinfer); use --backend onnxruntime")
    if strict:
        artifact = _pick(manifest, role, modality, precision, "engine", ("fp16", "fp32"))
    else:  # auto: the preferred precision whose engine fits this TensorRT and GPU
        gpu = cuda_device()
        order = ("fp16", "fp32") if precision == "auto" else (precision,)
        usable = [e for p in order for e in manifest.find(role, modality, p, "engine") if not _engine_problem(e, gpu)]
        artifact = usable[0] if usable else _pick(manifest, role, modality, precision, "engine", order)
    from .tensorrt import TensorRTBackend

    return _finish(TensorRTBackend(_existing(manifest, artifact), expected=artifact.tensorrt), manifest, role, modality,
                   artifact.file, [])


def _open_openvino(manifest: Manifest, role: str, modality: str | None, precision: str, threads: int | None,
                   notes: list[str]) -> Backend:
    from .choice import openvino_inference, openvino_int8
    from .openvino import OpenVinoBackend

    graph = "fp32" if precision in ("auto", "bf16") else precision
    artifact = None
    if graph == "int8":  # OpenVINO's own INT8 IR when export wrote one, else the Q/DQ graph
        artifact, why = openvino_int8(manifest, role, modality)
        notes.append(why)
    artifact = artifact or _pick(manifest, role, modality, graph, "onnx", ("fp32",))
    # BF16 is parity-gated for the embedders; the generator's auto stays FP32
    inference, why = openvino_inference(manifest, "fp32" if role != "embedder" and precision == "auto" else precision)
    if why:
        notes.append(why)
    path = _existing(manifest, artifact)  # an IR's weights file is verified with it
    return _finish(OpenVinoBackend(path, inference=inference, threads=threads, weights=manifest.weights_path(artifact)),
                   manifest, role, modality, artifact.file, notes)


def _open_torch(manifest: Manifest, role: str, modality: str | None, device: str) -> Backend:
    file = (manifest.checkpoint or {}).get("file")
    if not file:
        raise BackendError("--backend torch: manifest.json names no checkpoint; use onnxruntime or tensorrt")
    # export records the checkpoint's name and hash, not where it was on the exporting machine: the torch backend
    # (a development aid) wants the checkpoint copied next to manifest.json
    path = manifest.path(Path(file).name)
    if not path.is_file():
        raise BackendError(f"--backend torch: checkpoint {path} not found; copy {Path(file).name} next to "
                           "manifest.json, or use --backend onnxruntime / tensorrt")
    digest = (manifest.checkpoint or {}).get("sha256")
    if digest and sha256_file(path) != digest:
        raise BackendError(f"--backend torch: {path} does not match the checkpoint sha256 recorded at export; "
                           "copy the checkpoint that was exported")
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    from .torch_backend import TorchBackend

    backend = TorchBackend(path, role, modality, device=device)
    return _finish(backend, manifest, role, modality, path.name, [])


def _open_triton(manifest: Manifest, role: str, modality: str | None, precision: str, url: str | None) -> Backend:
    if not url:
        raise BackendError("--backend triton needs --url grpc://host:8001 (the Triton server)")
    if role != "embedder":
        raise BackendError("the Triton repository serves the embedders only; use onnxruntime for the generator")
    artifact = _pick(manifest, role, modality, precision, "onnx", ("fp16", "fp32"))  # the server has a GPU
    from .triton import TritonBackend, model_name

    return _finish(TritonBackend(url, model_name(artifact)), manifest, role, modality, model_name(artifact), [])


def _existing(manifest: Manifest, artifact: Artifact) -> Path:
    """The artifact's file, confined to the model folder and checked against its sha256 before anything runs it."""
    try:
        return manifest.verified_path(artifact)
    except ManifestError as exc:
        raise BackendError(str(exc)) from None


def _finish(backend: Backend, manifest: Manifest, role: str, modality: str | None, file: str,
            notes: list[str]) -> Backend:
    try:
        _check_shapes(backend, manifest, role, file)
    except BackendError:
        backend.close()
        raise
    if notes:
        backend.description += f" [{'; '.join(notes)}]"
    log.info("backend for %s%s: %s", role, f"/{modality}" if modality else "", backend.description)
    return backend
