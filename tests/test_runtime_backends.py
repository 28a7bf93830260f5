"""Runtime backends and the embedder on tiny ONNX graphs; TensorRT through fake tensorrt/cuda modules."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest

from testkit.graphs import (ATTR, DIM, HEIGHT, PROTO, WIDTH, embedder_graph, fake_engine_bytes, install_fakes,
                             make_export, reference_embedder)
from hicmd.runtime.backends import Backend, BackendError, open_backend
from hicmd.runtime.backends.onnxruntime import OnnxRuntimeBackend
from hicmd.runtime.backends.tensorrt import TensorRTBackend
from hicmd.runtime.embedder import Embedder
from hicmd.runtime.manifest import ManifestError, load_manifest

ENGINE_INFO = {"version": "10.3.0", "gpu": "FakeGPU", "compute_capability": "8.7",
               "profile": {"min": 1, "opt": 2, "max": 4}}


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    return make_export(tmp_path_factory.mktemp("export"))


def _images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, HEIGHT, WIDTH, 3), dtype=np.uint8)


# ---------------------------------------------------------------------------------------------- ONNX Runtime


def test_onnxruntime_backend_matches_numpy(export):
    images = _images(5)
    with OnnxRuntimeBackend(export.path(export.pick("embedder", "ir", "fp32", "onnx")), "cpu", threads=1) as b:
        assert isinstance(b, Backend) and "CPUExecutionProvider" in b.description
        assert b.input_shapes["images"] == (-1, HEIGHT, WIDTH, 3)
        out = b.run({"images": images})
    want = reference_embedder(images, "ir")
    assert set(out) == {"embedding", "prototype", "attribute"}
    for name in want:
        np.testing.assert_allclose(out[name], want[name], rtol=1e-4, atol=1e-5)


def test_onnxruntime_sessions_sleep_between_runs_unless_asked_to_spin(export):
    # the stream alternates its RGB and IR sessions: spinning ones take the cores the next one needs (README)
    path = export.path(export.pick("embedder", "ir", "fp32", "onnx"))
    for spin, want in ((False, "0"), (True, "1")):
        with OnnxRuntimeBackend(path, "cpu", spin=spin) as backend:
            options = backend.session.get_session_options()
            assert options.get_session_config_entry("session.intra_op.allow_spinning") == want


def test_onnxruntime_missing_provider_is_clear(export):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this ONNX Runtime has CUDA")
    with pytest.raises(BackendError, match="CUDAExecutionProvider is not available.*CPUExecutionProvider"):
        OnnxRuntimeBackend(export.path(export.artifacts[0]), "cuda")
    with pytest.raises(BackendError, match="unknown ONNX Runtime device"):
        OnnxRuntimeBackend(export.path(export.artifacts[0]), "gpu")


# ---------------------------------------------------------------------------------------------- open_backend


def test_open_backend_auto_without_tensorrt_is_onnxruntime_cpu(export, monkeypatch):
    from hicmd.runtime.backends import choice
    from hicmd.runtime.cpu import CpuInfo

    monkeypatch.setitem(sys.modules, "tensorrt", None)  # as if not installed, even on a GPU box
    # a CPU auto keeps on ONNX Runtime (an AVX-512 or Intel one takes OpenVINO: tests/test_int8_openvino.py)
    monkeypatch.setattr(choice, "cpu_info", lambda: CpuInfo("test", "AuthenticAMD", frozenset({"avx2"})))
    backend = open_backend(export, "embedder", "rgb")
    assert backend.description.startswith("onnxruntime") and "rgb.onnx" in backend.description
    generator = open_backend(export, "generator", backend="onnxruntime", device="cpu")
    assert "generator.onnx" in generator.description


def test_open_backend_errors_are_one_clear_line(export, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    cases = [
        (dict(backend="tensorflow"), "unknown backend"),
        (dict(device="tpu"), "unknown device"),
        (dict(precision="fp16", device="cpu"), r"no fp16 onnx embedder/rgb .*it has: rgb.onnx \(fp32 onnx\)"),
        (dict(backend="tensorrt"), "tensorrt package is not installed"),
    ]
    for kwargs, message in cases:
        with pytest.raises(BackendError, match=message) as info:
            open_backend(export, "embedder", "rgb", **kwargs)
        assert "\n" not in str(info.value)
    # A file named in the manifest but deleted after loading.
    manifest = make_export(tmp_path / "gone")
    (tmp_path / "gone" / "ir.onnx").unlink()
    with pytest.raises(BackendError, match="ir.onnx is named in manifest.json but missing"):
        open_backend(manifest, "embedder", "ir", device="cpu")


def test_open_backend_rejects_graph_of_another_input_size(tmp_path):
    manifest = make_export(tmp_path, manifest_size=(32, 16))
    with pytest.raises(BackendError, match=r"input images has shape \(-1, 16, 8, 3\) but manifest.json says "
                                           r"\(N, 32, 16, 3\)"):
        open_backend(manifest, "embedder", "rgb", device="cpu")


# ---------------------------------------------------------------------------------------------- Embedder


def _crops(seed: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    sizes = [(40, 17), (HEIGHT, WIDTH), (7, 30), (100, 50)]
    crops = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in sizes]
    crops.append(rng.integers(0, 256, (33, 21), dtype=np.uint8))  # gray IR crop
    crops.append(rng.integers(0, 256, (25, 12, 1), dtype=np.uint8))  # HxWx1
    crops.append(rng.integers(0, 256, (50, 30, 4), dtype=np.uint8))  # BGRA
    return crops


def _expected(crops: list[np.ndarray], modality: str) -> np.ndarray:
    """The reference's preprocessing: a PIL RGB image (gray -> 3 equal channels, as its loader's convert('RGB')),
    torchvision's Resize with PIL bicubic, then the graph."""
    from PIL import Image

    rgb = []
    for crop in crops:
        pixels = crop.reshape(crop.shape[:2]) if crop.ndim == 2 or crop.shape[2] == 1 else crop[..., 2::-1]
        picture = Image.fromarray(np.ascontiguousarray(pixels)).convert("RGB")
        rgb.append(np.asarray(picture.resize((WIDTH, HEIGHT), Image.Resampling.BICUBIC)))
    return reference_embedder(np.stack(rgb), modality)["embedding"]


class _Counting:
    def __init__(self, backend):
        self.backend, self.batches = backend, []
        self.description, self.input_shapes = backend.description, backend.input_shapes

    def run(self, feeds):
        self.batches.append(len(feeds["images"]))
        return self.backend.run(feeds)

    def close(self):
        self.backend.close()


def test_embedder_resizes_converts_and_batches(export):
    with Embedder(export, backend="onnxruntime", device="cpu", threads=1) as embedder:
        assert "rgb: onnxruntime" in embedder.describe() and "ir: onnxruntime" in embedder.describe()
        embedder.backends = {m: _Counting(b) for m, b in embedder.backends.items()}
        crops = _crops()
        rgb, ir = embedder.embed_pair(crops, crops[:2])
        assert rgb.dtype == np.float32 and rgb.shape == (len(crops), DIM) and ir.shape == (2, DIM)
        np.testing.assert_allclose(rgb, _expected(crops, "rgb"), atol=1e-5)
        np.testing.assert_allclose(ir, _expected(crops[:2], "ir"), atol=1e-5)
        np.testing.assert_allclose(np.linalg.norm(rgb, axis=1), 1.0, atol=1e-6)
        assert embedder.backends["rgb"].batches == [len(crops)] and embedder.backends["ir"].batches == [2]
        buffer = embedder._buffer
        embedder.embed(crops[:3], "rgb")  # smaller batch reuses the staging buffer
        assert embedder._buffer is buffer
        empty = embedder.embed([], "ir")
        assert empty.shape == (0, DIM) and embedder.backends["ir"].batches == [2]


def test_the_embedder_adds_each_crops_mirror_image_where_the_model_folder_asks(export, tmp_path):
    mirrored = dataclasses.replace(export, mirror=True)
    crops = _crops()
    plain = _expected(crops, "rgb")
    both = plain + _expected([np.fliplr(c) for c in crops], "rgb")
    want = both / np.linalg.norm(both, axis=1, keepdims=True)
    assert not np.allclose(want, plain, atol=1e-3)  # the mirror image changes the embedding: the check can fail
    with Embedder(mirrored, backend="onnxruntime", device="cpu", threads=1, modalities=("rgb",)) as embedder:
        assert "mirror images on" in embedder.describe()
        embedder.backends = {m: _Counting(b) for m, b in embedder.backends.items()}
        np.testing.assert_allclose(embedder.embed(crops, "rgb"), want, atol=1e-5)
        assert embedder.backends["rgb"].batches == [len(crops)] * 2  # two calls: the engine profile caps a batch
    with Embedder(mirrored, backend="onnxruntime", device="cpu", threads=1, modalities=("rgb",),
                  mirror=False) as embedder:  # hicmd stream --no-mirror
        assert "mirror images off: the model's gates were measured with them" in embedder.describe()
        np.testing.assert_allclose(embedder.embed(crops, "rgb"), plain, atol=1e-5)
    mirrored.save(tmp_path)  # the manifest carries it; a hand-edited non-boolean is refused
    assert load_manifest(tmp_path, check_files=False).mirror is True and export.mirror is False
    data = json.loads((tmp_path / "manifest.json").read_text())
    (tmp_path / "manifest.json").write_text(json.dumps({**data, "mirror": "false"}))
    with pytest.raises(ManifestError, match="mirror is 'false', not true or false"):
        load_manifest(tmp_path, check_files=False)


def test_embedder_rejects_bad_crops(export):
    with Embedder(export, backend="onnxruntime", device="cpu", modalities=("rgb",)) as embedder:
        with pytest.raises(ValueError, match="dtype uint16"):
            embedder.embed([np.zeros((20, 10), np.uint16)], "rgb")
        with pytest.raises(ValueError, match="shape"):
            embedder.embed([np.zeros((0, 10, 3), np.uint8)], "rgb")
        with pytest.raises(ValueError, match="no 'ir' embedder"):
            embedder.embed([np.zeros((20, 10, 3), np.uint8)], "ir")


def test_runtime_embedding_does_not_import_torch(export):
    code = textwrap.dedent(f"""
        import sys
        import numpy as np
        import hicmd.runtime.embedder, hicmd.runtime.backends
        from hicmd.runtime.embedder import Embedder
        e = Embedder({str(export.root)!r}, device="cpu")
        out = e.embed([np.zeros((30, 12, 3), np.uint8)], "ir")
        assert out.shape == (1, {DIM}), out.shape
        print("torch" in sys.modules)
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


# ---------------------------------------------------------------------------------------------- TensorRT (faked)


def _engine_file(tmp_path: Path, data: bytes | None = None) -> Path:
    path = tmp_path / "rgb.fp16.engine"
    path.write_bytes(fake_engine_bytes("rgb", max_batch=4) if data is None else data)
    return path


def test_tensorrt_backend_splits_batches_at_profile_max(tmp_path, monkeypatch):
    log, cudart = install_fakes(monkeypatch)
    images = _images(10, seed=5)
    with TensorRTBackend(_engine_file(tmp_path), expected=ENGINE_INFO) as backend:
        assert backend.max_batch == 4 and "FakeGPU" in backend.description and "batch <= 4" in backend.description
        log.clear()
        out = backend.run({"images": images})
        assert [e[1] for e in log if e[0] == "execute"] == [4, 4, 2]
        assert [e[2][0] for e in log if e[0] == "set_input_shape"] == [4, 4, 2]
        want = reference_embedder(images, "rgb")
        for name in ("embedding", "prototype", "attribute"):
            np.testing.assert_allclose(out[name], want[name], rtol=1e-5, atol=1e-6)
        assert out["prototype"].shape == (10, *PROTO) and out["attribute"].shape == (10, ATTR)
        assert ("HostToDevice" in cudart.copies[0][0]) and cudart.copies[0][1] == 4 * HEIGHT * WIDTH * 3
        assert backend.run({"images": images[:0]})["embedding"].shape == (0, DIM)
        with pytest.raises(BackendError, match="outside the engine's profile"):
            backend.run({"images": np.zeros((2, HEIGHT + 1, WIDTH, 3), np.uint8)})
        assert cudart.device_mem and cudart.host_mem and cudart.streams
    # close() (via the with block) freed everything
    assert not cudart.device_mem and not cudart.host_mem and not cudart.streams
    with pytest.raises(BackendError, match="closed"):
        backend.run({"images": images})


def test_tensorrt_backend_errors(tmp_path, monkeypatch):
    install_fakes(monkeypatch, version="10.3.0.30")
    with pytest.raises(BackendError, match="could not deserialise .*another GPU or TensorRT version"):
        TensorRTBackend(_engine_file(tmp_path, b"not an engine"))
    with pytest.raises(BackendError, match="built with TensorRT 10.7.0 but this machine has 10.3.0.30"):
        TensorRTBackend(_engine_file(tmp_path), expected={**ENGINE_INFO, "version": "10.7.0"})
    with pytest.raises(BackendError, match=r"compute capability 7.2\) but this is FakeGPU \(8.7\)"):
        TensorRTBackend(_engine_file(tmp_path), expected={**ENGINE_INFO, "compute_capability": "7.2"})
    with pytest.raises(BackendError, match="not found"):
        TensorRTBackend(tmp_path / "missing.engine")


def test_open_backend_auto_prefers_a_matching_engine(tmp_path, monkeypatch):
    log, _ = install_fakes(monkeypatch)
    manifest = make_export(tmp_path / "a", engine=ENGINE_INFO)
    backend = open_backend(manifest, "embedder", "rgb")
    assert backend.description.startswith("tensorrt 10.3.0.30 FakeGPU") and "rgb.fp16.engine" in backend.description
    backend.close()
    assert open_backend(manifest, "embedder", "rgb", device="cpu").description.startswith("onnxruntime")
    fp32 = open_backend(manifest, "embedder", "rgb", precision="fp32")  # the engines are fp16 only
    assert fp32.description.startswith("onnxruntime") and "no fp32 TensorRT engine" in fp32.description
    # An engine from another TensorRT: auto falls back to ONNX Runtime and says why; explicit tensorrt refuses.
    other = make_export(tmp_path / "b", engine={**ENGINE_INFO, "version": "11.4.0"})
    fallback = open_backend(other, "embedder", "rgb")
    assert fallback.description.startswith("onnxruntime") and "built with TensorRT 11.4.0" in fallback.description
    with pytest.raises(BackendError, match="built with TensorRT 11.4.0 but this machine has 10.3.0.30"):
        open_backend(other, "embedder", "rgb", backend="tensorrt")


def test_open_backend_auto_without_a_gpu_falls_back(tmp_path, monkeypatch):
    install_fakes(monkeypatch, device=False)  # tensorrt installed, no CUDA device visible
    manifest = make_export(tmp_path, engine=ENGINE_INFO)
    backend = open_backend(manifest, "embedder", "ir")
    assert backend.description.startswith("onnxruntime") and "no CUDA device is visible" in backend.description
    with pytest.raises(BackendError, match="CUDA cudaGetDevice failed"):
        open_backend(manifest, "embedder", "ir", backend="tensorrt")


def test_embedder_on_fake_tensorrt_matches_onnxruntime(tmp_path, monkeypatch):
    install_fakes(monkeypatch)
    manifest = make_export(tmp_path, engine=ENGINE_INFO)
    crops = _crops(seed=9) * 2  # 12 crops: three chunks at max batch 4
    with Embedder(manifest, backend="tensorrt") as trt, Embedder(manifest, backend="onnxruntime", device="cpu") as ort:
        assert "tensorrt" in trt.describe()
        np.testing.assert_allclose(trt.embed(crops, "rgb"), ort.embed(crops, "rgb"), atol=1e-5)


@pytest.mark.gpu
def test_tensorrt_real_engine_roundtrip(tmp_path):
    """Builds a real engine from the tiny ONNX graph and compares it with ONNX Runtime (needs a GPU)."""
    trt = pytest.importorskip("tensorrt")
    pytest.importorskip("cuda.bindings")
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    assert parser.parse(embedder_graph("rgb").SerializeToString()), parser.get_error(0)
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    profile.set_shape("images", (1, HEIGHT, WIDTH, 3), (2, HEIGHT, WIDTH, 3), (4, HEIGHT, WIDTH, 3))
    config.add_optimization_profile(profile)
    engine = builder.build_serialized_network(network, config)
    assert engine is not None
    path = tmp_path / "rgb.engine"
    path.write_bytes(bytes(engine))
    images = _images(9)
    with TensorRTBackend(path) as backend:
        got = backend.run({"images": images})["embedding"]
    np.testing.assert_allclose(got, reference_embedder(images, "rgb")["embedding"], atol=1e-4)


# ---------------------------------------------------------------------------------------------- PyTorch backend


@pytest.mark.slow  # ~10-20 s on 2 cores: builds and exports a tiny HiCMD
def test_torch_backend_matches_exported_onnx(tmp_path):
    """open_backend(backend="torch") on the checkpoint gives the exported graphs' numbers (tiny HiCMD)."""
    torch = pytest.importorskip("torch")
    from dataclasses import replace

    from hicmd.config import config_to_dict
    from hicmd.presets import TINY
    from hicmd.export.graphs import export_embedder, export_generator
    from hicmd.model import HiCMD
    from hicmd.runtime.manifest import Artifact, InputSpec, Manifest, sha256_file
    from hicmd.checkpoint import save_checkpoint

    torch.manual_seed(0)
    cfg = TINY  # the prototype encoder's wide reflect padding needs at least 80 x 40
    model = HiCMD(cfg.model, 4).eval()
    save_checkpoint(tmp_path / "last.pt", {"config": config_to_dict(cfg), "num_classes": 4,
                                           "model": model.state_dict(), "iteration": 0})
    export_embedder(model, "ir", tmp_path / "ir.onnx")
    export_generator(model, tmp_path / "generator.onnx")
    m = cfg.model
    manifest = Manifest(
        config_name="tiny", config=config_to_dict(cfg), checkpoint={"file": "last.pt"},
        input=InputSpec("images", "NHWC", "uint8", "RGB", m.height, m.width, m.mean, m.std),
        embedding_dim=m.embedding_dim, attribute_dim=m.attribute_dim, prototype_shape=m.prototype_shape,
        attribute_layout={}, opset=17,
        artifacts=(Artifact("ir", "embedder", "ir", "fp32", "onnx", "ir.onnx", sha256_file(tmp_path / "ir.onnx"),
                            (), ()),
                   Artifact("generator", "generator", None, "fp32", "onnx", "generator.onnx",
                            sha256_file(tmp_path / "generator.onnx"), (), ())),
        root=tmp_path)
    images = np.stack([cv2.resize(im, (m.width, m.height)) for im in _images(2).repeat(8, axis=1).repeat(8, axis=2)])
    torch_ir = open_backend(manifest, "embedder", "ir", backend="torch", device="cpu")
    onnx_ir = open_backend(manifest, "embedder", "ir", backend="onnxruntime", device="cpu")
    assert torch_ir.description.startswith("torch") and "last.pt" in torch_ir.description
    got, want = torch_ir.run({"images": images}), onnx_ir.run({"images": images})
    for name in ("embedding", "prototype", "attribute"):
        np.testing.assert_allclose(got[name], want[name], rtol=1e-3, atol=1e-4)
    feeds = {"prototype": want["prototype"], "attribute": want["attribute"]}
    torch_gen = open_backend(manifest, "generator", backend="torch", device="cpu")
    onnx_gen = open_backend(manifest, "generator", backend="onnxruntime", device="cpu")
    np.testing.assert_allclose(torch_gen.run(feeds)["image"], onnx_gen.run(feeds)["image"], atol=1e-2)
    with pytest.raises(BackendError, match="checkpoint .*missing.pt not found"):
        open_backend(replace(manifest, checkpoint={"file": str(tmp_path / "missing.pt")}), "embedder", "ir",
                     backend="torch", device="cpu")


def test_int8_graphs_run_as_u8u8_where_u8s8_saturates(monkeypatch):
    """x86 without VNNI: ONNX Runtime's U8S8 kernels saturate, so sessions ask for U8U8; with VNNI they do not."""
    import onnxruntime as ort

    from hicmd.runtime import cpu

    for flags, expected in (({"avx2", "fma"}, "1"), ({"avx2", "avx512f", "avx512_vnni"}, None), (set(), None)):
        monkeypatch.setattr(cpu, "cpu_info", lambda flags=flags: cpu.CpuInfo("test", "AuthenticAMD", frozenset(flags)))
        options = ort.SessionOptions()
        cpu.int8_safe(options)
        try:
            got = options.get_session_config_entry("session.x64quantprecision")
        except RuntimeError:  # ONNX Runtime raises for a key never set
            got = None
        assert got == expected, flags


def test_export_sessions_run_int8_as_the_stream_does(monkeypatch, tmp_path):
    """cpu_session (export's parity, mixed-precision and gate measurements) sets what int8_safe sets, and the
    thread count, for a graph given as a path or as bytes."""
    import onnx
    from onnx import TensorProto, helper

    from hicmd.runtime import cpu

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    graph = helper.make_model(helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x],
                                                [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])]),
                              opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(graph, str(tmp_path / "g.onnx"))
    monkeypatch.setattr(cpu, "cpu_info", lambda: cpu.CpuInfo("test", "AuthenticAMD", frozenset({"avx2"})))
    for model in (tmp_path / "g.onnx", graph.SerializeToString()):
        options = cpu.cpu_session(model, threads=1).get_session_options()
        assert options.get_session_config_entry("session.x64quantprecision") == "1"
        assert options.intra_op_num_threads == 1
