"""Inference backends: one small protocol, TensorRT / ONNX Runtime / PyTorch implementations."""
