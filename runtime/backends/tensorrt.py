"""TensorRT engine backend: the name-based v3 API, pinned host buffers, one CUDA stream. Torch-free.

Device memory comes from cuda.py (cuda-bindings or pycuda). Each I/O tensor's pinned host array and device memory
are one `Binding`, sized once for the optimisation profile's maximum batch; larger batches run in chunks.
Release with `close()` or a `with` block: CUDA memory is never left to `__del__`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .base import BackendBase, BackendError
from .cuda import cuda_api

__all__ = ["TensorRTBackend", "Binding", "short_version"]


def short_version(version: str) -> str:
    """'10.3.0.30' -> '10.3.0': engines are tied to major.minor.patch."""
    return ".".join(str(version).split(".")[:3])


@dataclass
class Binding:
    """One engine I/O tensor: its dtype, a pinned host array and device memory, both of the profile's maximum
    shape. A batch uses the first `size` elements of each."""

    dtype: np.dtype
    host: np.ndarray
    device: int  # device pointer

    def fill(self, array: np.ndarray) -> np.ndarray:
        """Copy `array` into the pinned buffer; returns the host view that holds it."""
        host = self.host.reshape(-1)[: array.size]
        host[...] = array.reshape(-1)
        return host

    def upload(self, cuda: Any, array: np.ndarray, stream: Any) -> None:
        """Fill the pinned buffer and queue its host->device copy."""
        cuda.h2d(self.device, self.fill(array), stream)

    def download(self, cuda: Any, shape: tuple[int, ...], stream: Any) -> np.ndarray:
        """Queue the device->host copy of a `shape` result; the view is valid after the stream synchronises."""
        view = self.host.reshape(-1)[: math.prod(shape)]
        cuda.d2h(view, self.device, stream)
        return view


class TensorRTBackend(BackendBase):
    """A deserialised engine with buffers for profile 0's maximum shapes.

    `expected` is the manifest's `tensorrt` record (version, gpu, compute_capability, profile); a version or
    compute-capability mismatch is reported before TensorRT gets the bytes.
    """

    def __init__(self, path: str | Path, expected: dict[str, Any] | None = None) -> None:
        import tensorrt as trt

        path = Path(path)
        if not path.is_file():
            raise BackendError(f"{path} not found; build it with 'hicmd export --engine' on this device")
        expected = expected or {}
        if expected.get("version") and short_version(expected["version"]) != short_version(trt.__version__):
            raise BackendError(f"{path.name} was built with TensorRT {expected['version']} but this machine has "
                               f"{trt.__version__}; rebuild the engine here (hicmd export --engine) or use onnxruntime")
        self.trt = trt
        self.cuda = cuda_api()
        self._bindings: dict[str, Binding] = {}
        self._stream: Any = None
        gpu, capability = self.cuda.device()
        if expected.get("compute_capability") and str(expected["compute_capability"]) != capability:
            raise BackendError(f"{path.name} was built for {expected.get('gpu', 'a GPU')} (compute capability "
                               f"{expected['compute_capability']}) but this is {gpu} ({capability}); rebuild it here")
        with self.cuda.scope():
            self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
            self.engine = self.runtime.deserialize_cuda_engine(path.read_bytes())
            if self.engine is None:
                raise BackendError(f"TensorRT {trt.__version__} could not deserialise {path} (built for another GPU "
                                   f"or TensorRT version?); rebuild it on this device with 'hicmd export --engine'")
            self.context = self.engine.create_execution_context()
            try:
                self._allocate(path)
            except BaseException:
                self.close()
                raise
        self.description = (f"tensorrt {trt.__version__} {gpu} ({self.cuda.name}) {path.name} "
                            f"(batch <= {self.max_batch})")

    def _allocate(self, path: Path) -> None:
        trt, engine = self.trt, self.engine
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.output_names = tuple(n for n in names if n not in inputs)
        dtypes = {n: np.dtype(trt.nptype(engine.get_tensor_dtype(n))) for n in names}
        self.input_shapes = {n: tuple(engine.get_tensor_shape(n)) for n in inputs}
        self._profile: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}
        for name in inputs:
            if -1 in self.input_shapes[name]:
                low, _, high = engine.get_tensor_profile_shape(name, 0)
                self._profile[name] = (tuple(low), tuple(high))
            else:
                self._profile[name] = (self.input_shapes[name], self.input_shapes[name])
            if not self.context.set_input_shape(name, self._profile[name][1]):
                raise BackendError(f"{path.name}: TensorRT rejected the profile's maximum shape for {name}")
        self.max_batch = min(high[0] for _, high in self._profile.values())
        self._out_max = {n: tuple(self.context.get_tensor_shape(n)) for n in self.output_names}
        for name in names:
            shape = self._profile[name][1] if name in self._profile else self._out_max[name]
            if min(shape) < 0:
                raise BackendError(f"{path.name}: output {name} has an unresolved shape {shape}")
            host = self.cuda.pinned(tuple(shape), dtypes[name])
            self._bindings[name] = Binding(dtypes[name], host, self.cuda.malloc(max(1, host.nbytes)))
            self.context.set_tensor_address(name, self._bindings[name].device)
        self._stream = self.cuda.stream()

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._stream is None:
            raise BackendError("the TensorRT backend is closed")
        self._require(feeds, self._profile)
        batch = {len(feeds[n]) for n in self._profile}
        if len(batch) != 1:
            raise BackendError(f"inputs disagree on the batch size: {sorted(batch)}")
        total = batch.pop()
        if total == 0:
            return {n: np.zeros((0, *self._out_max[n][1:]), self._bindings[n].dtype) for n in self.output_names}
        step = self.max_batch
        with self.cuda.scope():
            chunks = [self._run_chunk({n: feeds[n][i:i + step] for n in self._profile})
                      for i in range(0, total, step)]
        if len(chunks) == 1:
            return chunks[0]
        return {n: np.concatenate([c[n] for c in chunks]) for n in self.output_names}

    def _run_chunk(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        for name, array in feeds.items():
            array = np.ascontiguousarray(array, dtype=self._bindings[name].dtype)
            low, high = self._profile[name]
            fits = len(array.shape) == len(high) and all(a <= h for a, h in zip(array.shape, high)) and all(
                a >= lo for a, lo in zip(array.shape, low))
            if not fits or not self.context.set_input_shape(name, array.shape):
                raise BackendError(f"input {name} of shape {array.shape} is outside the engine's profile "
                                   f"{low}..{high}")
            self._bindings[name].upload(self.cuda, array, self._stream)
        shapes = {n: tuple(self.context.get_tensor_shape(n)) for n in self.output_names}
        if not self.context.execute_async_v3(self.cuda.handle(self._stream)):
            raise BackendError(f"TensorRT execution failed for {self.description}")
        views = {name: self._bindings[name].download(self.cuda, shape, self._stream) for name, shape in shapes.items()}
        self.cuda.sync(self._stream)
        # Copy out: the pinned buffers are overwritten by the next chunk.
        return {n: views[n].reshape(shapes[n]).copy() for n in self.output_names}

    def close(self) -> None:
        """Free device and pinned memory and the stream; safe to call twice."""
        with self.cuda.scope():
            if self._stream is not None:
                self.cuda.sync(self._stream)
                self.cuda.destroy(self._stream)
                self._stream = None
            for binding in self._bindings.values():
                self.cuda.free(binding.device)
                self.cuda.free_pinned(binding.host)
            self._bindings = {}
            self.context = self.engine = self.runtime = None
