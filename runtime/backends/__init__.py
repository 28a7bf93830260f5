"""Inference backends: one small protocol, TensorRT / ONNX Runtime / OpenVINO / PyTorch implementations.

`open_backend` picks one for a manifest artifact. `auto` prefers TensorRT (tensorrt importable, a CUDA device, an
engine in the manifest built for this TensorRT and GPU), then ONNX Runtime's CUDA provider, then OpenVINO when it
is installed on an Intel CPU or another x86-64 CPU with AVX-512, then ONNX Runtime on the CPU. The chosen
backend's `description` says what runs and why; it is also logged on "hicmd.runtime". Precisions: fp32 / fp16 /
int8 name the graph (OpenVINO's int8: its own NNCF IR when the export has one); bf16 is OpenVINO's inference of
the FP32 graph; `auto` never picks INT8 (FP32 stays the CPU default for parity).

- base.py       the protocol (`run(feeds) -> outputs`) and BackendError
- selection.py  `open_backend`: the choice, its reasons, the checks; choice.py: the CPU-side choices
- cuda.py       device memory and streams (cuda-bindings or pycuda) for TensorRT
- tensorrt.py, onnxruntime.py, openvino.py, torch_backend.py, triton.py: one backend each
"""

from .base import Backend, BackendError
from .cuda import cuda_device
from .selection import BACKENDS, DEVICES, PRECISIONS, open_backend

__all__ = ["Backend", "BackendError", "open_backend", "cuda_device", "BACKENDS", "DEVICES", "PRECISIONS"]
