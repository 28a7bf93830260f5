"""Triton model repository and DeepStream ReID files from an export folder, and the Triton client backend.

What runs here: every config.pbtxt is parsed strictly into Triton's own ModelConfig protobuf (tritonclient ships
model_config_pb2; an unknown field or wrong enum fails the parse) and checked against the graphs; the client backend
talks real gRPC (tritonclient) to a stand-in server in this process that implements Triton's inference protocol
with ONNX Runtime on the repository's model.onnx files. What does not: a real Triton server and DeepStream (neither
runs on these machines); the DeepStream config is checked for the keys and values nvtracker's ReID module reads.
"""

from __future__ import annotations

import subprocess
import sys
from concurrent import futures
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from testkit.graphs import HEIGHT, WIDTH, make_export

from hicmd.export.triton import TritonOptions, write_triton_repository  # noqa: E402
from hicmd.runtime.backends import BackendError  # noqa: E402
from hicmd.runtime.embedder import Embedder  # noqa: E402

grpc = pytest.importorskip("grpc")
text_format = pytest.importorskip("google.protobuf.text_format")
model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2")
ENGINE = {"version": "10.3.0.30", "compute_capability": "8.7", "profile": {"min": 1, "opt": 2, "max": 4}}


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("triton")
    make_export(root / "model", engine=ENGINE)
    names = write_triton_repository(root / "model", root / "repo", TritonOptions(max_batch=16, instances=2))
    return {"root": root, "model": root / "model", "repo": root / "repo", "names": names}


def parse(path: Path):
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def test_repository_layout_and_configs_parse_strictly(repo):
    import onnx

    assert sorted(repo["names"]) == ["hicmd_ir", "hicmd_ir_fp16_engine", "hicmd_rgb", "hicmd_rgb_fp16_engine"]
    mc = model_config_pb2
    for name in repo["names"]:
        folder = repo["repo"] / name
        cfg = parse(folder / "config.pbtxt")
        engine = name.endswith("_engine")
        assert cfg.name == name and cfg.platform == ("tensorrt_plan" if engine else "onnxruntime_onnx")
        model_file = folder / "1" / ("model.plan" if engine else "model.onnx")
        assert model_file.is_file() and cfg.default_model_filename == model_file.name
        assert cfg.max_batch_size == (4 if engine else 16)  # never above the engine's profile
        (image,) = cfg.input
        assert (image.name, image.data_type, image.format) == ("images", mc.TYPE_UINT8, mc.ModelInput.FORMAT_NHWC)
        assert list(image.dims) == [HEIGHT, WIDTH, 3]
        assert all(b <= cfg.max_batch_size for b in cfg.dynamic_batching.preferred_batch_size)
        assert cfg.dynamic_batching.max_queue_delay_microseconds == 2000
        assert [(g.count, g.kind) for g in cfg.instance_group] == [(2, mc.ModelInstanceGroup.KIND_GPU)]
        if not engine:  # outputs as the graph declares them (batch axis left to Triton)
            graph = onnx.load(str(model_file)).graph
            declared = {o.name: [d.dim_value for d in o.type.tensor_type.shape.dim[1:]] for o in graph.output}
            assert {o.name: list(o.dims) for o in cfg.output} == declared
            assert all(o.data_type == mc.TYPE_FP32 for o in cfg.output)


def test_the_parser_is_strict(repo):
    good = (repo["repo"] / "hicmd_rgb" / "config.pbtxt").read_text()
    for bad in (good.replace("max_batch_size", "max_batch"), good.replace("TYPE_UINT8", "TYPE_BYTE8"),
                good.replace("KIND_GPU", "GPU")):
        with pytest.raises(text_format.ParseError):
            text_format.Parse(bad, model_config_pb2.ModelConfig())


# ---------------------------------------------------------------------------------------------- client backend


class StandIn:
    """Triton's gRPC inference protocol (live/ready/metadata/config/infer) over the repository, run by ONNX Runtime,
    refusing a request over a model's max_batch_size as Triton does."""

    def __init__(self, repository: Path) -> None:
        from tritonclient.grpc import service_pb2, service_pb2_grpc

        self.pb = service_pb2
        self.models = {}
        for config in repository.glob("*/config.pbtxt"):
            cfg = parse(config)
            if cfg.platform == "onnxruntime_onnx":
                self.models[cfg.name] = (cfg, ort.InferenceSession(str(config.parent / "1" / "model.onnx")))
        self.requests = 0
        outer = self

        class Servicer(service_pb2_grpc.GRPCInferenceServiceServicer):
            def ServerLive(self, request, context):
                return service_pb2.ServerLiveResponse(live=True)

            def ModelReady(self, request, context):
                return service_pb2.ModelReadyResponse(ready=request.name in outer.models)

            def ModelMetadata(self, request, context):
                cfg, _ = outer.models[request.name]
                types = {model_config_pb2.TYPE_UINT8: "UINT8", model_config_pb2.TYPE_FP32: "FP32"}

                def meta(t):
                    return service_pb2.ModelMetadataResponse.TensorMetadata(
                        name=t.name, datatype=types[t.data_type], shape=[-1, *t.dims])

                return service_pb2.ModelMetadataResponse(name=cfg.name, versions=["1"], platform=cfg.platform,
                                                         inputs=[meta(t) for t in cfg.input],
                                                         outputs=[meta(t) for t in cfg.output])

            def ModelConfig(self, request, context):
                return service_pb2.ModelConfigResponse(config=outer.models[request.name][0])

            def ModelInfer(self, request, context):
                outer.requests += 1
                cfg, session = outer.models[request.model_name]
                batch = request.inputs[0].shape[0]
                if batch > cfg.max_batch_size:  # as Triton answers a request over the model's max_batch_size
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"inference request batch-size must be <= "
                                  f"{cfg.max_batch_size} for '{cfg.name}'")
                feeds = {t.name: np.frombuffer(raw, np.uint8).reshape(t.shape)
                         for t, raw in zip(request.inputs, request.raw_input_contents)}
                names = [o.name for o in request.outputs]
                values = session.run(names, feeds)
                response = service_pb2.ModelInferResponse(model_name=request.model_name)
                for name, value in zip(names, values):
                    response.outputs.add(name=name, datatype="FP32", shape=value.shape)
                    response.raw_output_contents.append(np.ascontiguousarray(value, np.float32).tobytes())
                return response

        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(Servicer(), self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def stop(self) -> None:
        self.server.stop(0)


def test_triton_backend_matches_local_onnxruntime(repo):
    server = StandIn(repo["repo"])
    try:
        rng = np.random.default_rng(0)
        crops = [rng.integers(0, 255, (40 + i, 20, 3), np.uint8) for i in range(5)]
        with Embedder(repo["model"], backend="triton", url=f"grpc://127.0.0.1:{server.port}") as remote, \
                Embedder(repo["model"], backend="onnxruntime", device="cpu") as local:
            assert "triton grpc://127.0.0.1" in remote.describe() and "hicmd_rgb" in remote.describe()
            for modality in ("rgb", "ir"):
                np.testing.assert_allclose(remote.embed(crops, modality), local.embed(crops, modality), atol=1e-6)
        assert server.requests == 2
        crowd = [rng.integers(0, 255, (40, 20, 3), np.uint8) for _ in range(40)]  # over max_batch_size 16
        with Embedder(repo["model"], backend="triton", url=f"grpc://127.0.0.1:{server.port}") as remote, \
                Embedder(repo["model"], backend="onnxruntime", device="cpu") as local:
            np.testing.assert_allclose(remote.embed(crowd, "rgb"), local.embed(crowd, "rgb"), atol=1e-6)
        assert server.requests == 2 + 3  # 16 + 16 + 8
        from testkit.stream import make_clip

        clip = make_clip(repo["root"] / "clip", seconds=2.0)
        run = subprocess.run([sys.executable, "-m", "hicmd", "stream", "--rgb", str(clip / "rgb.mp4"), "--ir",
                              str(clip / "ir.mp4"), "--model", str(repo["model"]), "--detections-rgb",
                              str(clip / "det_rgb.txt"), "--detections-ir", str(clip / "det_ir.txt"), "--backend",
                              "triton", "--url", f"grpc://127.0.0.1:{server.port}", "--events", str(clip / "ev.jsonl")],
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 0 and "triton grpc://127.0.0.1" in run.stderr, run.stderr
        assert server.requests > 2 and '"track_new"' in (clip / "ev.jsonl").read_text()  # the CLI went through it
        with pytest.raises(BackendError, match="needs --url"):
            Embedder(repo["model"], backend="triton")
        server.models.pop("hicmd_ir")  # a server that did not load the IR model
        with pytest.raises(BackendError, match="no ready model 'hicmd_ir'"):
            Embedder(repo["model"], backend="triton", url=f"grpc://127.0.0.1:{server.port}")
    finally:
        server.stop()


# ---------------------------------------------------------------------------------------------- DeepStream


def test_deepstream_reid_config_and_graph(repo, tmp_path):
    yaml = pytest.importorskip("yaml")
    from hicmd.export.deepstream import REID_KEYS, write_deepstream

    files = write_deepstream(repo["model"], tmp_path / "ds", mode="fp16")
    assert sorted(p.name for p in files) == ["config_tracker_hicmd_ir.yml", "config_tracker_hicmd_rgb.yml",
                                             "hicmd_ir_reid.onnx", "hicmd_rgb_reid.onnx"]
    rng = np.random.default_rng(1)
    images = rng.integers(0, 255, (3, HEIGHT, WIDTH, 3), np.uint8)
    for modality in ("rgb", "ir"):
        reid = yaml.safe_load((tmp_path / "ds" / f"config_tracker_hicmd_{modality}.yml").read_text())["ReID"]
        assert set(reid) == set(REID_KEYS)
        assert reid["inferDims"] == [3, HEIGHT, WIDTH] and reid["networkMode"] == 1 and reid["colorFormat"] == 0
        assert reid["offsets"] == [0.0, 0.0, 0.0] and reid["netScaleFactor"] == 1.0 and reid["keepAspc"] == 0
        session = ort.InferenceSession(str(tmp_path / "ds" / reid["onnxFile"]))
        (inp,), outs = session.get_inputs(), session.get_outputs()
        assert inp.type == "tensor(float)" and [o.name for o in outs] == ["embedding"]
        assert outs[0].shape[1] == reid["reidFeatureSize"]
        # this graph has no Transpose after its input, so DeepStream must feed NHWC (inputOrder 1)
        assert reid["inputOrder"] == 1 and inp.shape[1:] == [HEIGHT, WIDTH, 3]
        original = ort.InferenceSession(str(repo["model"] / f"{modality}.onnx")).run(["embedding"],
                                                                                   {"images": images})[0]
        np.testing.assert_allclose(session.run(None, {inp.name: images.astype(np.float32)})[0], original, atol=1e-6)


def test_deepstream_graph_embeds_mirrored_crops_as_the_runtime_does(repo, tmp_path):
    """A folder exported with mirrored crops: nvtracker never mirrors, so its graph does, and sums as the stream."""
    from hicmd.export.deepstream import write_deepstream
    from hicmd.runtime.embedder import summed

    write_deepstream(repo["model"], tmp_path / "ds", mirror=True)
    images = np.random.default_rng(3).integers(0, 255, (3, HEIGHT, WIDTH, 3), np.uint8)
    assert not np.array_equal(images, images[:, :, ::-1])
    for modality in ("rgb", "ir"):
        assert "seen and mirrored" in (tmp_path / "ds" / f"config_tracker_hicmd_{modality}.yml").read_text()
        original = ort.InferenceSession(str(repo["model"] / f"{modality}.onnx"))
        seen, flipped = (original.run(["embedding"], {"images": np.ascontiguousarray(x)})[0]
                         for x in (images, images[:, :, ::-1]))
        ds = ort.InferenceSession(str(tmp_path / "ds" / f"hicmd_{modality}_reid.onnx"))
        got = ds.run(None, {"input": images.astype(np.float32)})[0]
        np.testing.assert_allclose(got, summed(seen, flipped), atol=1e-6)
        assert np.abs(got - seen).max() > 1e-3  # the mirror image changed something


@pytest.mark.slow
def test_export_cli_writes_both_from_a_real_checkpoint(tmp_path):
    """`hicmd export CKPT --triton DIR --deepstream DIR` on the tiny model: real graphs (Transpose + Cast preamble)."""
    pytest.importorskip("torch")
    yaml = pytest.importorskip("yaml")
    import typer
    from testkit.checkpoints import make_checkpoint
    from typer.testing import CliRunner

    from hicmd.commands.export import command
    from hicmd.runtime.embedder import summed

    app = typer.Typer()
    app.command()(command)
    ckpt = make_checkpoint(tmp_path / "tiny.pt")
    result = CliRunner().invoke(app, [str(ckpt), "--out", str(tmp_path / "model"), "--no-verify",
                                      "--triton", str(tmp_path / "repo"), "--deepstream", str(tmp_path / "ds")])
    assert result.exit_code == 0, result.output
    cfg = parse(tmp_path / "repo" / "hicmd_rgb" / "config.pbtxt")
    assert list(cfg.input[0].dims) == [80, 40, 3] and cfg.input[0].data_type == model_config_pb2.TYPE_UINT8
    reid = yaml.safe_load((tmp_path / "ds" / "config_tracker_hicmd_ir.yml").read_text())["ReID"]
    assert reid["inputOrder"] == 0 and reid["inferDims"] == [3, 80, 40]  # the real graph transposes: NCHW
    images = np.random.default_rng(2).integers(0, 255, (2, 80, 40, 3), np.uint8)
    ir = ort.InferenceSession(str(tmp_path / "model" / "ir.onnx"))
    seen, flipped = (ir.run(["embedding"], {"images": np.ascontiguousarray(x)})[0]
                     for x in (images, images[:, :, ::-1]))
    ds = ort.InferenceSession(str(tmp_path / "ds" / "hicmd_ir_reid.onnx"))
    got = ds.run(None, {"input": images.transpose(0, 3, 1, 2).astype(np.float32)})[0]
    np.testing.assert_allclose(got, summed(seen, flipped), atol=1e-5)  # export mirrors by default: so does DeepStream
