"""Shared test settings: few threads (2-core CI), and GPU-marked tests skip cleanly without TensorRT + CUDA."""

from __future__ import annotations

import importlib.util
import os
import shutil

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "2")


def _has_gpu() -> bool:
    if importlib.util.find_spec("tensorrt") is None:
        return False
    return shutil.which("nvidia-smi") is not None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _has_gpu():
        return
    skip = pytest.mark.skip(reason="needs an NVIDIA GPU with TensorRT (pip install hicmd[trt])")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
