"""TensorRT engine backend: the name-based v3 API, pinned host buffers, one CUDA stream. Torch-free.

Device memory goes through cuda-bindings (`cuda.bindings.runtime`, or the older `cuda.cudart`) and falls back to
pycuda when that is what the device has (primary context via `pycuda.autoprimaryctx`: `pycuda.autoinit` would create
a second context). Buffers are sized once for the optimisation profile's maximum batch; larger batches run in chunks.
Release with `close()` or a `with` block: CUDA memory is never left to `__del__`.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .base import BackendBase, BackendError

__all__ = ["TensorRTBackend", "cuda_api", "short_version"]


def short_version(version: str) -> str:
    """'10.3.0.30' -> '10.3.0': engines are tied to major.minor.patch."""
    return ".".join(str(version).split(".")[:3])


class _CudaRuntime:
    """cuda-bindings runtime API; every call returns (err, *results) instead of raising."""

    def __init__(self, cudart: Any) -> None:
        self.rt = cudart
        self._pinned: dict[int, int] = {}  # id(array) -> host pointer
        self.name = "cuda-bindings"

    def _ok(self, result: Any, what: str) -> Any:
        err, *rest = result if isinstance(result, tuple) else (result,)
        if err != self.rt.cudaError_t.cudaSuccess:
            raise BackendError(f"CUDA {what} failed ({err}); is an NVIDIA GPU visible to this process?")
        return rest[0] if len(rest) == 1 else None

    def device(self) -> tuple[str, str]:
        index = self._ok(self.rt.cudaGetDevice(), "cudaGetDevice")
        props = self._ok(self.rt.cudaGetDeviceProperties(index), "cudaGetDeviceProperties")
        name = props.name.decode(errors="replace") if isinstance(props.name, bytes) else str(props.name)
        return name.rstrip("\x00"), f"{props.major}.{props.minor}"

    def malloc(self, nbytes: int) -> int:
        return int(self._ok(self.rt.cudaMalloc(nbytes), "cudaMalloc"))

    def free(self, pointer: int) -> None:
        self._ok(self.rt.cudaFree(pointer), "cudaFree")

    def pinned(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        nbytes = max(1, math.prod(shape) * dtype.itemsize)
        pointer = int(self._ok(self.rt.cudaMallocHost(nbytes), "cudaMallocHost"))
        array = np.ctypeslib.as_array((ctypes.c_uint8 * nbytes).from_address(pointer))
        array = array[: math.prod(shape) * dtype.itemsize].view(dtype).reshape(shape)
        self._pinned[id(array)] = pointer
        return array

    def free_pinned(self, array: np.ndarray) -> None:
        self._ok(self.rt.cudaFreeHost(self._pinned.pop(id(array))), "cudaFreeHost")

    def stream(self) -> Any:
        return self._ok(self.rt.cudaStreamCreate(), "cudaStreamCreate")

    def handle(self, stream: Any) -> int:
        return int(stream)

    def destroy(self, stream: Any) -> None:
        self._ok(self.rt.cudaStreamDestroy(stream), "cudaStreamDestroy")

    def h2d(self, pointer: int, host: np.ndarray, stream: Any) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._ok(self.rt.cudaMemcpyAsync(pointer, host.ctypes.data, host.nbytes, kind, stream), "cudaMemcpyAsync")

    def d2h(self, host: np.ndarray, pointer: int, stream: Any) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._ok(self.rt.cudaMemcpyAsync(host.ctypes.data, pointer, host.nbytes, kind, stream), "cudaMemcpyAsync")

    def sync(self, stream: Any) -> None:
        self._ok(self.rt.cudaStreamSynchronize(stream), "cudaStreamSynchronize")

    def scope(self) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()  # the runtime API binds the primary context on every thread by itself


class _PyCuda:
    """pycuda on the device's primary context (shared with anything else in the process)."""

    def __init__(self, driver: Any, context: Any) -> None:
        self.cuda, self.context = driver, context
        self._device: dict[int, Any] = {}
        self.name = "pycuda"

    def device(self) -> tuple[str, str]:
        dev = self.context.get_device()
        return dev.name(), ".".join(map(str, dev.compute_capability()))

    def malloc(self, nbytes: int) -> int:
        allocation = self.cuda.mem_alloc(nbytes)
        self._device[int(allocation)] = allocation
        return int(allocation)

    def free(self, pointer: int) -> None:
        self._device.pop(pointer).free()

    def pinned(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        return self.cuda.pagelocked_empty(shape, dtype)

    def free_pinned(self, array: np.ndarray) -> None:
        if hasattr(array.base, "free"):
            array.base.free()

    def stream(self) -> Any:
        return self.cuda.Stream()

    def handle(self, stream: Any) -> int:
        return int(stream.handle)

    def destroy(self, stream: Any) -> None:
        pass  # pycuda streams are released with their Python object

    def h2d(self, pointer: int, host: np.ndarray, stream: Any) -> None:
        self.cuda.memcpy_htod_async(pointer, host, stream)

    def d2h(self, host: np.ndarray, pointer: int, stream: Any) -> None:
        self.cuda.memcpy_dtoh_async(host, pointer, stream)

    def sync(self, stream: Any) -> None:
        stream.synchronize()

    @contextlib.contextmanager
    def scope(self) -> Iterator[None]:
        self.context.push()  # pycuda needs the context current on the calling thread (pycuda#242)
        try:
            yield
        finally:
            self.context.pop()


def cuda_api() -> _CudaRuntime | _PyCuda:
    """cuda-bindings if installed, else pycuda; BackendError naming both when neither is."""
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart  # cuda-python < 12.6 layout
        except ImportError:
            cudart = None
    if cudart is not None:
        return _CudaRuntime(cudart)
    try:
        import pycuda.driver as driver
    except ImportError:
        raise BackendError("TensorRT needs cuda-bindings (pip install cuda-bindings) or pycuda for device "
                           "memory; neither is installed") from None
    try:
        import pycuda.autoprimaryctx as primary
    except Exception as exc:  # pycuda raises its own driver errors when there is no usable GPU
        raise BackendError(f"pycuda could not open the GPU's primary context ({exc})") from None
    return _PyCuda(driver, primary.context)


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
        self._device_ptrs: dict[str, int] = {}
        self._host: dict[str, np.ndarray] = {}
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
        self._dtypes = {n: np.dtype(trt.nptype(engine.get_tensor_dtype(n))) for n in names}
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
            self._host[name] = self.cuda.pinned(tuple(shape), self._dtypes[name])
            self._device_ptrs[name] = self.cuda.malloc(max(1, self._host[name].nbytes))
            self.context.set_tensor_address(name, self._device_ptrs[name])
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
            return {n: np.zeros((0, *self._out_max[n][1:]), self._dtypes[n]) for n in self.output_names}
        step = self.max_batch
        with self.cuda.scope():
            chunks = [self._run_chunk({n: feeds[n][i:i + step] for n in self._profile})
                      for i in range(0, total, step)]
        if len(chunks) == 1:
            return chunks[0]
        return {n: np.concatenate([c[n] for c in chunks]) for n in self.output_names}

    def _run_chunk(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        for name, array in feeds.items():
            array = np.ascontiguousarray(array, dtype=self._dtypes[name])
            low, high = self._profile[name]
            fits = len(array.shape) == len(high) and all(a <= h for a, h in zip(array.shape, high)) and all(
                a >= lo for a, lo in zip(array.shape, low))
            if not fits or not self.context.set_input_shape(name, array.shape):
                raise BackendError(f"input {name} of shape {array.shape} is outside the engine's profile "
                                   f"{low}..{high}")
            host = self._host[name].reshape(-1)[: array.size]
            host[...] = array.reshape(-1)
            self.cuda.h2d(self._device_ptrs[name], host, self._stream)
        shapes = {n: tuple(self.context.get_tensor_shape(n)) for n in self.output_names}
        if not self.context.execute_async_v3(self.cuda.handle(self._stream)):
            raise BackendError(f"TensorRT execution failed for {self.description}")
        views = {}
        for name, shape in shapes.items():
            views[name] = self._host[name].reshape(-1)[: math.prod(shape)]
            self.cuda.d2h(views[name], self._device_ptrs[name], self._stream)
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
            for pointer in self._device_ptrs.values():
                self.cuda.free(pointer)
            for array in self._host.values():
                self.cuda.free_pinned(array)
            self._device_ptrs, self._host = {}, {}
            self.context = self.engine = self.runtime = None
