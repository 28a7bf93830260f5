"""OpenVINO backend (pip install hicmd[openvino]): the exported ONNX graphs on Intel's runtime. Torch-free.

It reads the same files as ONNX Runtime: the FP32 graph, optionally inferred in BF16 (`precision="bf16"`: OpenVINO's
CPU plugin default on CPUs with AVX512-BF16 / AMX), and the INT8 Q/DQ graphs, whose quantized convolutions run in
INT8 and whose float remainder is kept FP32; and OpenVINO's own INT8 IR (`*.int8.nncf.xml` + `.bin`, NNCF's
quantization of the FP32 graph, hicmd.export.int8_openvino), which it runs faster than the Q/DQ graph. The
inference precision is always set explicitly and read back into `description`, never left to the plugin's default
silently. Dynamic batch; a latency hint (one stream).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import BackendBase, BackendError

__all__ = ["OpenVinoBackend", "openvino_version", "supports_bf16"]

INFERENCE = ("fp32", "bf16")


def openvino_version() -> str | None:
    try:
        import openvino
    except ImportError:
        return None
    return openvino.__version__.split("-")[0]


def supports_bf16(device: str = "CPU") -> bool:
    import openvino

    return "BF16" in openvino.Core().get_property(device, "OPTIMIZATION_CAPABILITIES")


class OpenVinoBackend(BackendBase):
    """One compiled OpenVINO model (an ONNX file, or an IR .xml with its `weights` .bin); `inference` is fp32 or
    bf16 (the precision of the graph's float parts)."""

    def __init__(self, path: str | Path, device: str = "CPU", inference: str = "fp32",
                 threads: int | None = None, weights: str | Path | None = None) -> None:
        try:
            import openvino as ov
            import openvino.properties as props
            import openvino.properties.hint as hints
        except ImportError:
            raise BackendError("--backend openvino: the openvino package is not installed (pip install "
                               "hicmd[openvino]); use --backend onnxruntime") from None
        path = Path(path)
        if inference not in INFERENCE:
            raise BackendError(f"OpenVINO inference precision {inference!r}: use one of {', '.join(INFERENCE)}")
        core = ov.Core()
        if device not in core.available_devices:
            raise BackendError(f"OpenVINO has no {device} device here (it has: {', '.join(core.available_devices)})")
        if inference == "bf16" and not supports_bf16(device):
            raise BackendError(f"--precision bf16: this {device} has no BF16 support (AVX512-BF16 or AMX); use fp32")
        config = {hints.performance_mode: hints.PerformanceMode.LATENCY,
                  hints.inference_precision: ov.Type.bf16 if inference == "bf16" else ov.Type.f32}
        if threads is not None:
            if threads < 1:
                raise BackendError(f"threads must be >= 1 (got {threads})")
            config[props.inference_num_threads] = threads
        try:
            model = core.read_model(str(path), None if weights is None else str(weights))
            self.compiled = core.compile_model(model, device, config)
        except RuntimeError as exc:
            raise BackendError(f"OpenVINO cannot load {path}: {str(exc).splitlines()[0]}") from None
        self.request = self.compiled.create_infer_request()
        self.input_shapes = {i.get_any_name(): tuple(d.get_length() if d.is_static else -1
                                                     for d in i.get_partial_shape()) for i in model.inputs}
        self.output_names = tuple(o.get_any_name() for o in model.outputs)
        self._dtypes = {i.get_any_name(): np.dtype(i.get_element_type().to_dtype()) for i in model.inputs}
        self.inference = self.compiled.get_property(hints.inference_precision).get_type_name()  # "bf16", "f32"
        self.description = f"openvino {openvino_version()} {device} ({self.inference} inference) {path.name}"

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self._require(feeds, self._dtypes)
        inputs = {n: np.ascontiguousarray(feeds[n], dtype=t) for n, t in self._dtypes.items()}
        results = self.request.infer(inputs)
        # the request reuses its output buffers: copy before the next call
        return {o.get_any_name(): np.array(v) for o, v in results.items()}

    def close(self) -> None:
        self.request = None
        self.compiled = None
