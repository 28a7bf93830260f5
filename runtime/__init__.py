"""hicmd.runtime: the edge runtime. numpy + OpenCV + one inference backend (TensorRT, ONNX Runtime or, for
development, PyTorch). Never imports torch unless the PyTorch backend is chosen.

Installed as `hicmd.runtime` (see pyproject's package-dir). `manifest.json`, written by hicmd.export, is the only
contract between export and runtime (runtime/manifest.py).
"""
