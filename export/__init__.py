"""hicmd.export: checkpoint -> ONNX (FP32, FP16) -> TensorRT engines, with parity gates and manifest.json.

Installed as `hicmd.export` (see pyproject's package-dir). Torch is imported here; the runtime never imports this.

Modules: graphs (wrapper modules + FP32 ONNX export), fp16 (mixed-precision conversion), opcheck (static
TensorRT 10.x check), parity (gates vs PyTorch), tensorrt (engine builds, trtexec lines), pipeline (the whole
`hicmd export`, used by hicmd/commands/export.py).
"""
