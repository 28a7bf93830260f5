"""hicmd.export: checkpoint -> ONNX (FP32, FP16) -> TensorRT engines, with parity gates and manifest.json.

Installed as `hicmd.export` (see pyproject's package-dir). Torch is imported here; the runtime never imports this.
"""
