"""ONNX Runtime backend: CPU, CUDA or TensorRT execution provider. Torch-free."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..cpu import int8_safe
from .base import BackendBase, BackendError

__all__ = ["ALLOW_SPINNING", "OnnxRuntimeBackend", "PROVIDERS", "available_providers"]

# device -> providers in priority order; CPU stays last so that ops a GPU provider lacks still run.
PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}
# The session setting that lets idle intra-op threads busy-wait: the runtime's sessions turn it off (OnnxRuntimeBackend)
ALLOW_SPINNING = "session.intra_op.allow_spinning"
_DTYPES = {"tensor(uint8)": np.uint8, "tensor(float)": np.float32, "tensor(float16)": np.float16,
           "tensor(int64)": np.int64, "tensor(int32)": np.int32}


def available_providers() -> list[str]:
    import onnxruntime

    return list(onnxruntime.get_available_providers())


class OnnxRuntimeBackend(BackendBase):
    """One `onnxruntime.InferenceSession` on `device` ("cpu", "cuda" or "tensorrt")."""

    def __init__(self, path: str | Path, device: str = "cpu", threads: int | None = None, spin: bool = False) -> None:
        """`spin`: let the session's idle threads busy-wait for the next run (ONNX Runtime's default). Off, because
        the stream runs its RGB and IR embedders (and detectors) one after the other, and each session's spinning
        threads take the cores the next session needs (README, "ONNX Runtime sessions that sleep between runs")."""
        import onnxruntime

        path = Path(path)
        if device not in PROVIDERS:
            raise BackendError(f"unknown ONNX Runtime device {device!r}; use one of {', '.join(PROVIDERS)}")
        if not path.is_file():
            raise BackendError(f"{path} not found; re-export the model with 'hicmd export'")
        wanted = PROVIDERS[device][0]
        have = onnxruntime.get_available_providers()
        if wanted not in have:
            raise BackendError(f"ONNX Runtime provider {wanted} is not available (this install has: "
                               f"{', '.join(have)}); install onnxruntime-gpu or choose --device cpu")
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # warnings about unused initialisers etc. are noise at run time
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads is not None:
            if threads < 1:
                raise BackendError(f"threads must be >= 1 (got {threads})")
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        options.add_session_config_entry(ALLOW_SPINNING, "1" if spin else "0")
        int8_safe(options)
        try:
            self.session = onnxruntime.InferenceSession(
                str(path), sess_options=options, providers=[p for p in PROVIDERS[device] if p in have])
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph types
            raise BackendError(f"ONNX Runtime cannot load {path}: {str(exc).splitlines()[0]}") from None
        # ORT silently falls back to CPU when a GPU provider fails to initialise (missing CUDA libraries).
        used = self.session.get_providers()[0]
        if used != wanted:
            raise BackendError(f"ONNX Runtime could not start {wanted} for {path.name} (it fell back to {used}); "
                               f"check the CUDA/cuDNN/TensorRT libraries or choose --device cpu")
        self._inputs = {i.name: _DTYPES.get(i.type) for i in self.session.get_inputs()}
        self.input_shapes = {i.name: tuple(d if isinstance(d, int) else -1 for d in i.shape)
                             for i in self.session.get_inputs()}
        self.output_names = tuple(o.name for o in self.session.get_outputs())
        self.description = f"onnxruntime {onnxruntime.__version__} {used} {path.name}"

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self._require(feeds, self._inputs)
        cast = {name: np.ascontiguousarray(feeds[name], dtype=dtype) for name, dtype in self._inputs.items()}
        outputs = self.session.run(list(self.output_names), cast)
        return dict(zip(self.output_names, outputs))

    def close(self) -> None:
        self.session = None
