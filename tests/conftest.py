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


@pytest.fixture(scope="module")
def one_torch_thread():
    """Two shared cores: one intra-op thread is several times faster than two contended ones. Restored after the
    module, so later tests (a bit-exact resume compares runs at the process's own thread count) are unaffected."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def trained(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """root/clips and root/model of the stream tests' trained `tiny` model (tests/testkit/stream_model.py), built
    once and cached in pytest's cache folder under a key of the sources and settings that shape it."""
    from testkit.cache import cached_build
    from testkit.stream_model import build, cache_key

    return cached_build(request, tmp_path_factory, f"hicmd-stream-model-{cache_key()}", build)
