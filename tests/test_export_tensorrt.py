"""TensorRT side of the export: pure helpers on any machine; real engine builds only with tensorrt + a GPU."""

from __future__ import annotations

import pytest

from hicmd.export.tensorrt import layer_precisions, tensorrt_problem, trtexec_command

SHAPES = {"images": ((1, 256, 128, 3), (8, 256, 128, 3), (32, 256, 128, 3))}


def test_trtexec_command_lines():
    line = trtexec_command("rgb.fp16.onnx", "rgb.fp16.engine", SHAPES, workspace_gb=2)
    assert line == ("trtexec --onnx=rgb.fp16.onnx --saveEngine=rgb.fp16.engine --stronglyTyped "
                    "--minShapes=images:1x256x128x3 --optShapes=images:8x256x128x3 --maxShapes=images:32x256x128x3 "
                    "--memPoolSize=workspace:2048M --timingCacheFile=timing.cache")
    weak = trtexec_command("rgb.onnx", "rgb.fp16.engine", SHAPES, weak_fp16=True)
    assert " --fp16 " in weak and "--stronglyTyped" not in weak


def test_layer_precisions_from_inspector_json():
    info = {"Layers": [
        {"Name": "conv1",
         "Outputs": [{"Name": "a", "Format/Datatype": "Channel major FP16 format where channel % 8 == 0"}]},
        {"Name": "in1", "Outputs": [{"Name": "b", "Format/Datatype": "Row major linear FP32"}]},
        {"Name": "cast", "Outputs": [{"Name": "c", "Format/Datatype": "Row major linear Half"}]},
        {"Name": "shape", "Outputs": [{"Name": "d", "Format/Datatype": "Row major linear Int32"}]},
    ]}
    assert layer_precisions(info) == {"fp16": 2, "fp32": 1, "int": 1}
    assert layer_precisions({"Layers": ["conv1", "conv2"]}) == {"unknown": 2}


@pytest.mark.gpu
@pytest.mark.skipif(tensorrt_problem() is not None,
                    reason=f"TensorRT build needs tensorrt + CUDA: {tensorrt_problem()}")
def test_fp16_engines_build_and_pass_parity(tmp_path, one_torch_thread):
    from hicmd.export.pipeline import ExportOptions, run_export
    from hicmd.runtime.manifest import load_manifest
    from testkit.checkpoints import make_checkpoint

    ckpt = make_checkpoint(tmp_path / "tiny.pt")
    result = run_export(ckpt, tmp_path / "model", ExportOptions(fp16=True, engine=True, batch=(1, 4, 16)))
    assert result.ok, (result.failed, result.engine_problem)
    manifest = load_manifest(tmp_path / "model")
    engines = [a for a in manifest.artifacts if a.format == "engine"]
    assert {a.name for a in engines} == {"rgb.fp16", "ir.fp16", "generator.fp16"}
    for engine in engines:
        assert engine.tensorrt["layer_precisions"].get("fp16", 0) > 0
        assert engine.tensorrt["profile"] == {"min": 1, "opt": 4, "max": 16}
        assert engine.tensorrt["compute_capability"] and engine.tensorrt["portable"] is False
    assert all(g["passed"] for g in manifest.parity["engine"]["gates"])
    assert (tmp_path / "model" / "timing.cache").stat().st_size > 0


def test_a_re_export_builds_on_the_previous_timing_cache(tmp_path, monkeypatch):
    """The engines are built inside the export's staging folder; the target's timing cache must be there when they
    are, or every re-export starts TensorRT's tactic timing over. The build is faked: this is the plumbing."""
    import hicmd.checkpoint
    from hicmd.export import pipeline
    from hicmd.runtime.manifest import MANIFEST_NAME

    seen: list[bytes | None] = []

    def fake_export(model, cfg, checkpoint, out, options, step):  # what a build does with the cache
        cache = out / pipeline.TIMING_CACHE
        seen.append(cache.read_bytes() if cache.is_file() else None)
        if options.engine:
            cache.write_bytes((seen[-1] or b"") + b"+tactics")
        (out / MANIFEST_NAME).write_text("{}")
        return pipeline.ExportResult(out, manifest=out / MANIFEST_NAME)

    monkeypatch.setattr(hicmd.checkpoint, "load_model", lambda path: (None, None))
    monkeypatch.setattr(pipeline, "_export", fake_export)
    target = tmp_path / "model"
    for _ in range(2):
        pipeline.run_export(tmp_path / "any.pt", target, pipeline.ExportOptions(engine=True))
    pipeline.run_export(tmp_path / "any.pt", target, pipeline.ExportOptions(engine=False))  # no engines: no cache
    assert seen == [None, b"+tactics", None]
    assert (target / pipeline.TIMING_CACHE).read_bytes() == b"+tactics+tactics"


def test_engine_builds_are_recorded_as_artifacts(tmp_path, monkeypatch):
    """What `--engine` does around the builder, with TensorRT faked (it cannot run here): one engine per graph from
    the right ONNX, all on the export's timing cache, each recorded as a hashed, non-portable artifact."""
    from hicmd.config import load_config
    from hicmd.export import tensorrt
    from hicmd.export.engines import build_engines
    from hicmd.export.pipeline import ExportOptions, ExportResult

    built = []

    def fake_build(onnx_path, engine_path, shapes, *, fp16, timing_cache=None, **_):
        built.append((onnx_path.name, engine_path.name, fp16, timing_cache))
        engine_path.write_bytes(b"plan of " + onnx_path.name.encode())
        return tensorrt.BuiltEngine(engine_path, "11.0", "GPU", "9.0", {"fp16": 3}, True)

    monkeypatch.setattr(tensorrt, "tensorrt_problem", lambda: None)
    monkeypatch.setattr(tensorrt, "build_engine", fake_build)
    result = ExportResult(tmp_path)
    options = ExportOptions(fp16=True, engine=True, verify=False, batch=(1, 4, 16))
    artifacts = build_engines(None, load_config("tiny"), tmp_path, options, result, lambda _: None)
    assert built == [(f"{g}.fp16.onnx", f"{g}.fp16.engine", True, tmp_path / "timing.cache")
                     for g in ("rgb", "ir", "generator")]
    assert [a.name for a in artifacts] == ["rgb.fp16", "ir.fp16", "generator.fp16"]
    for artifact in artifacts:
        assert artifact.format == "engine" and artifact.precision == "fp16" and artifact.sha256
        assert artifact.tensorrt["profile"] == {"min": 1, "opt": 4, "max": 16}
        assert artifact.tensorrt["portable"] is False
    assert result.engine_problem is None and len(result.trtexec) == 3
