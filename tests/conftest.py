"""Shared test settings: few threads (2-core CI), and GPU-marked tests skip cleanly without TensorRT + CUDA."""

from __future__ import annotations

import importlib.util
import os
import pickle
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads libgomp: see the Makefile


SHARED_MODEL_BUILDER = "test_stream_model.py"  # its one test streams for ~75 s after the build


def _has_gpu() -> bool:
    if importlib.util.find_spec("tensorrt") is None:
        return False
    return shutil.which("nvidia-smi") is not None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    _schedule(items)
    if _has_gpu():
        return
    skip = pytest.mark.skip(reason="needs an NVIDIA GPU with TensorRT (pip install hicmd[trt])")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def _schedule(items: list[pytest.Item]) -> None:
    """The order `make test`'s two workers take whole files in (--dist loadfile --no-loadscope-reorder): first one
    file that needs the shared trained model (`trained`, 5-6 min to build on 2 busy cores), so one worker builds it
    while the other runs the slow files that do not need it, then the rest of those; last the other files that need
    the model, built by then. Ordered by test count (xdist's default), a second file that needed the model came up
    while it was being built and its worker waited on the lock: 169 s idle in a 722 s run; with those files right
    after the slow ones, 97 s (2-core Xeon, 2026-12-06)."""
    needs = {item.path for item in items if "trained" in item.fixturenames}
    slow = {item.path for item in items if item.get_closest_marker("slow")}

    def rank(item: pytest.Item) -> int:
        if item.path.name == SHARED_MODEL_BUILDER:
            return 0
        return 3 if item.path in needs else 1 if item.path in slow else 2

    items.sort(key=rank)  # stable: within a rank, files and tests keep their collection order


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


@pytest.fixture(scope="session")
def int8_model(request: pytest.FixtureRequest, trained, tmp_path_factory):
    """run_export of the trained checkpoint with --int8 (percentile calibration, the default, on 64 training crops per modality,
    the protocol gate on a tenth of the test split, at testkit.stream_model.INT8_MAX_DROP); with nncf installed it
    holds OpenVINO's own INT8 IRs too.
    Shared by tests/test_int8.py and tests/test_int8_openvino.py, which `--dist loadfile` puts on different workers:
    cached like `trained`, so one worker builds it and the other waits instead of exporting it a second time."""
    from testkit.cache import cached_build, source_key
    from testkit.stream_model import INT8_MAX_DROP, cache_key

    key = source_key([cache_key(), INT8_MAX_DROP], ["hicmd", "export", "runtime", "tests/conftest.py"])  # all it runs
    root = cached_build(request, tmp_path_factory, f"hicmd-int8-model-{key}", lambda root: _build_int8(trained, root))
    result = pickle.loads((root / "result.pkl").read_bytes())
    return {"out": root / "model", "result": result, "crops": trained / "crops", "ckpt": trained / "run" / "last.pt",
            "data": root / "data"}


def _build_int8(trained: Path, root: Path) -> None:
    """One torch thread while it exports (2 shared cores: several times faster than two contended ones)."""
    import torch

    from hicmd.export.int8 import Int8Options
    from hicmd.export.pipeline import ExportOptions, run_export
    from testkit.stream_model import INT8_MAX_DROP

    data = _every_tenth_test_image(trained / "crops", root / "data")
    options = ExportOptions(crops=32, int8=Int8Options(calib=f"regdb:{data}", crops=64, max_drop=INT8_MAX_DROP))
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = run_export(trained / "run" / "last.pt", root / "model", options)
    finally:
        torch.set_num_threads(before)
    (root / "result.pkl").write_bytes(pickle.dumps(result))


def _every_tenth_test_image(crops: Path, root: Path) -> Path:
    """The fixture's RegDB-layout crops with a tenth of them as the test split (the protocol gate's cost)."""
    (root / "idx").mkdir(parents=True)
    for folder in ("Visible", "Thermal"):
        (root / folder).symlink_to(crops / folder)
    for lst in (crops / "idx").glob("*.txt"):
        lines = lst.read_text().splitlines(keepends=True)
        (root / "idx" / lst.name).write_text("".join(lines[::10] if lst.name.startswith("test") else lines))
    return root
