"""Tiny ONNX graphs, a manifest and fake TensorRT / CUDA modules that satisfy the export->runtime contract.

Used by test_runtime_backends.py and test_translate.py. The graphs are linear maps with seeded weights, so each test
can compute the expected outputs with numpy (`reference_embedder`, `reference_generator`).
"""

from __future__ import annotations

import ctypes
import enum
import json
import types
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from hicmd.runtime.manifest import Artifact, InputSpec, Manifest, TensorSpec, load_manifest, sha256_file

HEIGHT, WIDTH, DIM, ATTR = 16, 8, 6, 8
PROTO = (2, 4, 2)
LAYOUT = {"chunks": 2, "style": [0, 2], "pose": [2, 3], "illumination": [3, 4]}
SEEDS = {"rgb": 1, "ir": 2}


def _weights(modality: str) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(SEEDS[modality])
    n = HEIGHT * WIDTH * 3
    return {name: (rng.standard_normal((n, k)) / np.sqrt(n)).astype(np.float32)
            for name, k in (("We", DIM), ("Wp", int(np.prod(PROTO))), ("Wa", ATTR))}


def _generator_weights() -> np.ndarray:
    rng = np.random.default_rng(7)
    n = int(np.prod(PROTO)) + ATTR
    return (rng.standard_normal((n, 3 * HEIGHT * WIDTH)) / np.sqrt(n)).astype(np.float32)


def reference_embedder(images_rgb: np.ndarray, modality: str) -> dict[str, np.ndarray]:
    """What the embedder graph computes for (N, H, W, 3) uint8 RGB."""
    w = _weights(modality)
    flat = images_rgb.reshape(len(images_rgb), -1).astype(np.float32) / np.float32(255)
    e = flat @ w["We"]
    return {"embedding": e / np.linalg.norm(e, axis=1, keepdims=True),
            "prototype": (flat @ w["Wp"]).reshape(-1, *PROTO), "attribute": flat @ w["Wa"]}


def reference_generator(prototype: np.ndarray, attribute: np.ndarray) -> np.ndarray:
    z = np.concatenate([prototype.reshape(len(prototype), -1), attribute], axis=1) @ _generator_weights()
    return (255.0 / (1.0 + np.exp(-z))).reshape(-1, 3, HEIGHT, WIDTH).astype(np.float32)


def _const(name: str, values: list[int]) -> onnx.TensorProto:
    return numpy_helper.from_array(np.array(values, np.int64), name)


def embedder_graph(modality: str, height: int = HEIGHT, width: int = WIDTH) -> onnx.ModelProto:
    w = _weights(modality)
    if (height, width) != (HEIGHT, WIDTH):  # a graph for another input size (mismatch tests only)
        n = height * width * 3
        w = {k: np.resize(v, (n, v.shape[1])) for k, v in w.items()}
    nodes = [
        helper.make_node("Cast", ["images"], ["xf"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["xf", "inv255"], ["xs"]),
        helper.make_node("Reshape", ["xs", "flat_shape"], ["flat"]),
        helper.make_node("MatMul", ["flat", "We"], ["e"]),
        helper.make_node("ReduceL2", ["e"], ["n"], axes=[1], keepdims=1),
        helper.make_node("Div", ["e", "n"], ["embedding"]),
        helper.make_node("MatMul", ["flat", "Wp"], ["p"]),
        helper.make_node("Reshape", ["p", "proto_shape"], ["prototype"]),
        helper.make_node("MatMul", ["flat", "Wa"], ["attribute"]),
    ]
    inits = [numpy_helper.from_array(v, k) for k, v in w.items()] + [
        numpy_helper.from_array(np.array(1 / 255, np.float32), "inv255"),
        _const("flat_shape", [0, -1]), _const("proto_shape", [0, *PROTO])]
    graph = helper.make_graph(
        nodes, f"{modality}_embedder",
        [helper.make_tensor_value_info("images", TensorProto.UINT8, ["N", height, width, 3])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", DIM]),
         helper.make_tensor_value_info("prototype", TensorProto.FLOAT, ["N", *PROTO]),
         helper.make_tensor_value_info("attribute", TensorProto.FLOAT, ["N", ATTR])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def generator_graph() -> onnx.ModelProto:
    nodes = [
        helper.make_node("Reshape", ["prototype", "flat_shape"], ["pf"]),
        helper.make_node("Concat", ["pf", "attribute"], ["z"], axis=1),
        helper.make_node("MatMul", ["z", "Wg"], ["g"]),
        helper.make_node("Sigmoid", ["g"], ["s"]),
        helper.make_node("Mul", ["s", "c255"], ["s255"]),
        helper.make_node("Reshape", ["s255", "image_shape"], ["image"]),
    ]
    inits = [numpy_helper.from_array(_generator_weights(), "Wg"), numpy_helper.from_array(np.array(255, np.float32),
             "c255"), _const("flat_shape", [0, -1]), _const("image_shape", [0, 3, HEIGHT, WIDTH])]
    graph = helper.make_graph(
        nodes, "generator",
        [helper.make_tensor_value_info("prototype", TensorProto.FLOAT, ["N", *PROTO]),
         helper.make_tensor_value_info("attribute", TensorProto.FLOAT, ["N", ATTR])],
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, HEIGHT, WIDTH])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _embedder_io(height: int, width: int) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    return ((TensorSpec("images", (-1, height, width, 3), "uint8"),),
            (TensorSpec("embedding", (-1, DIM), "float32"), TensorSpec("prototype", (-1, *PROTO), "float32"),
             TensorSpec("attribute", (-1, ATTR), "float32")))


def make_export(folder: Path, manifest_size: tuple[int, int] = (HEIGHT, WIDTH), engine: dict | None = None,
                checkpoint: str = "") -> Manifest:
    """Write rgb.onnx, ir.onnx, generator.onnx and manifest.json into `folder` (+ fake rgb/ir engines if
    `engine` holds their manifest `tensorrt` record); return the loaded manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    artifacts = []
    for modality in ("rgb", "ir"):
        onnx.save(embedder_graph(modality), folder / f"{modality}.onnx")
        ins, outs = _embedder_io(HEIGHT, WIDTH)
        artifacts.append(Artifact(modality, "embedder", modality, "fp32", "onnx", f"{modality}.onnx",
                                  sha256_file(folder / f"{modality}.onnx"), ins, outs))
        if engine is not None:
            (folder / f"{modality}.fp16.engine").write_bytes(fake_engine_bytes(modality))
            artifacts.append(Artifact(f"{modality}.fp16", "embedder", modality, "fp16", "engine",
                                      f"{modality}.fp16.engine", sha256_file(folder / f"{modality}.fp16.engine"),
                                      ins, outs, tensorrt=engine))
    onnx.save(generator_graph(), folder / "generator.onnx")
    artifacts.append(Artifact(
        "generator", "generator", None, "fp32", "onnx", "generator.onnx", sha256_file(folder / "generator.onnx"),
        (TensorSpec("prototype", (-1, *PROTO), "float32"), TensorSpec("attribute", (-1, ATTR), "float32")),
        (TensorSpec("image", (-1, 3, HEIGHT, WIDTH), "float32"),)))
    manifest = Manifest(
        config_name="test", config={}, checkpoint={"file": checkpoint, "sha256": ""},
        input=InputSpec("images", "NHWC", "uint8", "RGB", manifest_size[0], manifest_size[1],
                        (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        embedding_dim=DIM, attribute_dim=ATTR, prototype_shape=PROTO, attribute_layout=LAYOUT, opset=17,
        artifacts=tuple(artifacts))
    manifest.save(folder)
    return load_manifest(folder)


# ---------------------------------------------------------------------------------------------- fake TensorRT / CUDA

MAGIC = b"FAKE-TRT-ENGINE\n"


def fake_engine_bytes(modality: str, max_batch: int = 4) -> bytes:
    return MAGIC + json.dumps({"modality": modality, "max_batch": max_batch}).encode()


class FakeCudart(types.ModuleType):
    """cuda-bindings' runtime API on host memory: (err, *results) tuples, allocations tracked for leak checks."""

    class cudaError_t(enum.IntEnum):
        cudaSuccess = 0
        cudaErrorNoDevice = 100

    class cudaMemcpyKind(enum.IntEnum):
        cudaMemcpyHostToDevice = 1
        cudaMemcpyDeviceToHost = 2

    def __init__(self, capability: tuple[int, int] = (8, 7), device: bool = True) -> None:
        super().__init__("cuda.bindings.runtime")
        self.capability, self.has_device = capability, device
        self.device_mem: dict[int, ctypes.Array] = {}
        self.host_mem: dict[int, ctypes.Array] = {}
        self.streams: set[int] = set()
        self.copies: list[tuple[str, int]] = []
        ok = self.cudaError_t.cudaSuccess

        def alloc(table: dict, n: int) -> tuple:
            buffer = (ctypes.c_uint8 * n)()
            table[ctypes.addressof(buffer)] = buffer
            return ok, ctypes.addressof(buffer)

        def copy(dst: int, src: int, n: int, kind: enum.IntEnum, stream: int) -> tuple:
            assert stream in self.streams, "copy on an unknown stream"
            ctypes.memmove(dst, src, n)
            self.copies.append((kind.name, n))
            return (ok,)

        def properties(index: int) -> tuple:
            return ok, SimpleNamespace(name=b"FakeGPU", major=self.capability[0], minor=self.capability[1])

        self.cudaGetDevice = lambda: (ok, 0) if self.has_device else (self.cudaError_t.cudaErrorNoDevice, 0)
        self.cudaGetDeviceProperties = properties
        self.cudaMalloc = lambda n: alloc(self.device_mem, n)
        self.cudaMallocHost = lambda n: alloc(self.host_mem, n)
        self.cudaFree = lambda p: (self.device_mem.pop(p), (ok,))[1]
        self.cudaFreeHost = lambda p: (self.host_mem.pop(p), (ok,))[1]
        self.cudaStreamCreate = lambda: (self.streams.add(len(self.streams) + 1), (ok, len(self.streams)))[1]
        self.cudaStreamDestroy = lambda s: (self.streams.remove(s), (ok,))[1]
        self.cudaStreamSynchronize = lambda s: (ok,)
        self.cudaMemcpyAsync = copy


class _Mode(enum.Enum):
    INPUT = 0
    OUTPUT = 1


class _DataType(enum.Enum):
    UINT8 = np.uint8
    FLOAT = np.float32


class _FakeEngine:
    """Embedder engine: images (-1, H, W, 3) uint8 -> embedding, prototype, attribute (reference_embedder)."""

    def __init__(self, spec: dict, log: list) -> None:
        self.modality, self.max_batch, self.log = spec["modality"], spec["max_batch"], log
        self.names = ["images", "embedding", "prototype", "attribute"]
        self.num_io_tensors = len(self.names)
        self.shapes = {"images": (-1, HEIGHT, WIDTH, 3), "embedding": (-1, DIM), "prototype": (-1, *PROTO),
                       "attribute": (-1, ATTR)}

    def get_tensor_name(self, i: int) -> str:
        return self.names[i]

    def get_tensor_mode(self, name: str) -> _Mode:
        return _Mode.INPUT if name == "images" else _Mode.OUTPUT

    def get_tensor_dtype(self, name: str) -> _DataType:
        return _DataType.UINT8 if name == "images" else _DataType.FLOAT

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return self.shapes[name]

    def get_tensor_profile_shape(self, name: str, profile: int) -> tuple:
        assert name == "images" and profile == 0, "profile shapes exist for inputs only"
        return (1, HEIGHT, WIDTH, 3), (2, HEIGHT, WIDTH, 3), (self.max_batch, HEIGHT, WIDTH, 3)

    def create_execution_context(self) -> "_FakeContext":
        return _FakeContext(self)


class _FakeContext:
    def __init__(self, engine: _FakeEngine) -> None:
        self.engine, self.shape, self.addresses = engine, None, {}

    def set_input_shape(self, name: str, shape: tuple) -> bool:
        shape = tuple(shape)
        self.engine.log.append(("set_input_shape", name, shape))
        if shape[1:] != (HEIGHT, WIDTH, 3) or not 1 <= shape[0] <= self.engine.max_batch:
            return False
        self.shape = shape
        return True

    def get_tensor_shape(self, name: str) -> tuple:
        return self.shape if name == "images" else (self.shape[0], *self.engine.shapes[name][1:])

    def set_tensor_address(self, name: str, address: int) -> bool:
        self.addresses[name] = address
        return True

    def _view(self, name: str, dtype: type) -> np.ndarray:
        shape = self.get_tensor_shape(name)
        n = int(np.prod(shape)) * np.dtype(dtype).itemsize
        raw = np.ctypeslib.as_array((ctypes.c_uint8 * n).from_address(self.addresses[name]))
        return raw.view(dtype).reshape(shape)

    def execute_async_v3(self, stream_handle: int) -> bool:
        assert isinstance(stream_handle, int) and stream_handle > 0, "execute on a created stream, not the default"
        self.engine.log.append(("execute", self.shape[0]))
        outputs = reference_embedder(self._view("images", np.uint8).copy(), self.engine.modality)
        for name, value in outputs.items():
            self._view(name, np.float32)[...] = value
        return True


def fake_tensorrt(version: str = "10.3.0.30") -> tuple[types.ModuleType, list]:
    """A `tensorrt` module whose engines are `fake_engine_bytes`; returns (module, call log)."""
    log: list = []
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt.Logger = type("Logger", (), {"WARNING": 2, "__init__": lambda self, level=2: None})
    trt.TensorIOMode = _Mode
    trt.nptype = lambda dtype: dtype.value

    class Runtime:
        def __init__(self, logger: object) -> None:
            pass

        def deserialize_cuda_engine(self, data: bytes) -> _FakeEngine | None:
            log.append(("deserialize", len(data)))
            if not data.startswith(MAGIC):
                return None  # what TensorRT does for an engine from another version or GPU
            return _FakeEngine(json.loads(data[len(MAGIC):]), log)

    trt.Runtime = Runtime
    return trt, log


def install_fakes(monkeypatch, version: str = "10.3.0.30", capability: tuple[int, int] = (8, 7),
                  device: bool = True) -> tuple[list, FakeCudart]:
    """Put fake `tensorrt` and `cuda.bindings.runtime` into sys.modules for this test."""
    trt, log = fake_tensorrt(version)
    cudart = FakeCudart(capability, device)
    bindings = types.ModuleType("cuda.bindings")
    bindings.runtime = cudart
    cuda = types.ModuleType("cuda")
    cuda.bindings = bindings
    for name, module in (("tensorrt", trt), ("cuda", cuda), ("cuda.bindings", bindings),
                         ("cuda.bindings.runtime", cudart)):
        monkeypatch.setitem(__import__("sys").modules, name, module)
    from hicmd.runtime.backends import choice
    from hicmd.runtime.cpu import CpuInfo

    # the fake GPU is a Jetson Orin's (8.7): its Arm CPU falls back to ONNX Runtime, whatever CPU runs the tests
    monkeypatch.setattr(choice, "cpu_info", lambda: CpuInfo("ARMv8 (fake Orin)", "", frozenset()))
    return log, cudart


def yolo_graph(path: Path, boxes: list[list[float]]) -> Path:
    """A stand-in YOLOv8 person detector at `path`: it ignores the image and outputs `boxes` (centre x, centre y,
    width, height, person score in its 640x640 letterbox), one anchor each of 16, in YOLOv8's (1, 4 + 1, anchors)."""
    out = np.zeros((1, 5, 16), np.float32)
    for anchor, box in enumerate(boxes):
        out[0, :, anchor] = box
    graph = helper.make_graph(
        [helper.make_node("Constant", [], ["output0"], value=numpy_helper.from_array(out))], "fake",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 640, 640])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 5, 16])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path
