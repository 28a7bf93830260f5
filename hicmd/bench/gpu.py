"""GPU stage split for `hicmd bench`: preprocess (host copy into pinned memory), host->device, compute and
device->host of one TensorRT batch, timed with CUDA events on the backend's own stream.

Thin on purpose: it repeats `TensorRTBackend._run_chunk` with events between the stages, using the backend's
bindings, and is only reached on a machine with TensorRT and a GPU (it has not run on the CPU-only build machine).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

__all__ = ["tensorrt_stages"]


class _Events:
    """record(stream) -> event; elapsed_ms(a, b) after a synchronise, for cuda-bindings or pycuda."""

    def __init__(self, cuda: Any) -> None:
        self.cuda = cuda
        self.bindings = hasattr(cuda, "rt")
        self._made: list[Any] = []

    def record(self, stream: Any) -> Any:
        if self.bindings:
            rt = self.cuda.rt
            event = self.cuda._ok(rt.cudaEventCreate(), "cudaEventCreate")
            self.cuda._ok(rt.cudaEventRecord(event, stream), "cudaEventRecord")
        else:
            event = self.cuda.cuda.Event()
            event.record(stream)
        self._made.append(event)
        return event

    def elapsed_ms(self, start: Any, end: Any) -> float:
        if self.bindings:
            return float(self.cuda._ok(self.cuda.rt.cudaEventElapsedTime(start, end), "cudaEventElapsedTime"))
        return float(end.time_since(start))

    def release(self) -> None:
        if self.bindings:
            for event in self._made:
                self.cuda.rt.cudaEventDestroy(event)
        self._made = []


def tensorrt_stages(backend: Any, feeds: dict[str, np.ndarray], runs: int = 10) -> dict[str, float]:
    """Median ms per stage over `runs` batches (the batch must fit the engine's profile)."""
    samples: dict[str, list[float]] = {"preprocess": [], "h2d": [], "compute": [], "d2h": []}
    events = _Events(backend.cuda)
    stream = backend._stream
    with backend.cuda.scope():
        for _ in range(runs):
            t0 = time.perf_counter()
            hosts = {}
            for name, array in feeds.items():
                binding = backend._bindings[name]
                hosts[name] = binding.fill(np.ascontiguousarray(array, dtype=binding.dtype))
                backend.context.set_input_shape(name, array.shape)
            samples["preprocess"].append((time.perf_counter() - t0) * 1000.0)
            e0 = events.record(stream)
            for name, host in hosts.items():
                backend.cuda.h2d(backend._bindings[name].device, host, stream)
            e1 = events.record(stream)
            shapes = {n: tuple(backend.context.get_tensor_shape(n)) for n in backend.output_names}
            if not backend.context.execute_async_v3(backend.cuda.handle(stream)):
                raise RuntimeError("TensorRT execution failed while timing stages")
            e2 = events.record(stream)
            for name, shape in shapes.items():
                backend._bindings[name].download(backend.cuda, shape, stream)
            e3 = events.record(stream)
            backend.cuda.sync(stream)
            for key, (a, b) in (("h2d", (e0, e1)), ("compute", (e1, e2)), ("d2h", (e2, e3))):
                samples[key].append(events.elapsed_ms(a, b))
            events.release()
    return {k: float(np.median(v)) for k, v in samples.items()}
