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
        {"Name": "conv1", "Outputs": [{"Name": "a", "Format/Datatype": "Channel major FP16 format where channel % 8 == 0"}]},
        {"Name": "in1", "Outputs": [{"Name": "b", "Format/Datatype": "Row major linear FP32"}]},
        {"Name": "cast", "Outputs": [{"Name": "c", "Format/Datatype": "Row major linear Half"}]},
        {"Name": "shape", "Outputs": [{"Name": "d", "Format/Datatype": "Row major linear Int32"}]},
    ]}
    assert layer_precisions(info) == {"fp16": 2, "fp32": 1, "int": 1}
    assert layer_precisions({"Layers": ["conv1", "conv2"]}) == {"unknown": 2}


@pytest.mark.gpu
@pytest.mark.skipif(tensorrt_problem() is not None, reason=f"TensorRT build needs tensorrt + CUDA: {tensorrt_problem()}")
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
