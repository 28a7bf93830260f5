"""CUDA device memory, pinned host memory and streams for the TensorRT backend, through cuda-bindings
(`cuda.bindings.runtime`, or the older `cuda.cudart`) or, where that is what the device has, pycuda on the primary
context (`pycuda.autoprimaryctx`: `pycuda.autoinit` would create a second context). Torch-free."""

from __future__ import annotations

import contextlib
import ctypes
import math
from typing import Any, Iterator

import numpy as np

from .base import BackendError

__all__ = ["cuda_api", "cuda_device", "CudaApi"]


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


CudaApi = _CudaRuntime | _PyCuda


def cuda_device() -> tuple[str, str] | None:
    """(GPU name, compute capability) through cuda-bindings/pycuda, or None when there is no usable device."""
    try:
        return cuda_api().device()
    except Exception:  # no bindings, no driver, no device: all mean "no CUDA here"
        return None
