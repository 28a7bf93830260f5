"""`hicmd export` on a random-initialised tiny HiCMD: ONNX + FP16 + (absent) TensorRT, gates, manifest.

One CLI export is shared by the module (about 30 s on 2 busy cores); the other tests reuse its files.
"""

from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from typer.testing import CliRunner

from hicmd.presets import PRESETS
from hicmd.errors import HicmdError
from hicmd.export import parity as P
from hicmd.export.opcheck import check_tensorrt
from hicmd.export.pipeline import ExportOptions, run_export, verify
from hicmd.runtime.manifest import load_manifest, sha256_file
from hicmd.checkpoint import load_model
from testkit.checkpoints import make_checkpoint

GRAPHS = ("rgb", "ir", "generator")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """`hicmd export CKPT --out DIR --fp16 --engine` through the Typer command."""
    from hicmd.commands.export import command
    from hicmd.export.tensorrt import tensorrt_problem

    import typer

    root = tmp_path_factory.mktemp("export")
    ckpt = make_checkpoint(root / "tiny.pt")
    app = typer.Typer()
    app.command()(command)
    result = CliRunner().invoke(app, [str(ckpt), "--out", str(root / "model"), "--fp16", "--engine"])
    return {"ckpt": ckpt, "out": root / "model", "result": result, "trt_problem": tensorrt_problem()}


def test_export_writes_graphs_and_manifest(exported):
    out, result = exported["out"], exported["result"]
    assert "FAIL" not in result.output
    if exported["trt_problem"] is None:  # a GPU machine with tensorrt: engines must have been built
        assert result.exit_code == 0, result.output
    else:  # no TensorRT here: clear message, trtexec lines, non-zero exit, ONNX + manifest still written
        assert result.exit_code == 1, result.output
        text = " ".join(result.output.split())  # rich wraps long lines
        assert "no TensorRT engines" in text
        assert "pip install hicmd[trt]" in text or "CUDA" in text
        lines = [ln for ln in result.output.splitlines() if ln.startswith("trtexec ")]
        assert [ln.split()[1] for ln in lines] == [f"--onnx={g}.fp16.onnx" for g in GRAPHS]
        assert all("--stronglyTyped" in ln and "--minShapes=" in ln and "--timingCacheFile=timing.cache" in ln
                   for ln in lines)
        size = PRESETS["tiny"].model
        assert f"--maxShapes=images:32x{size.height}x{size.width}x3" in lines[0]
    manifest = load_manifest(out)
    names = {a.name for a in manifest.artifacts}
    assert {"rgb", "ir", "generator", "rgb.fp16", "ir.fp16", "generator.fp16"} <= names
    for artifact in manifest.artifacts:
        assert artifact.sha256 == sha256_file(out / artifact.file)
    cfg = PRESETS["tiny"].model
    assert manifest.config_name == "tiny" and manifest.opset == 17
    assert (manifest.input.height, manifest.input.width, manifest.input.dtype) == (cfg.height, cfg.width, "uint8")
    assert manifest.input.layout == "NHWC" and manifest.input.color == "RGB"
    assert json.loads((out / "manifest.json").read_text())["input"]["resize"] == "pil-bicubic"  # training's resize
    assert manifest.embedding_dim == cfg.embedding_dim and manifest.attribute_dim == cfg.attribute_dim
    assert manifest.attribute_layout == {"chunks": 4, "chunk": 128, "style": [0, 64], "pose": [64, 96],
                                         "illumination": [96, 128]}
    assert manifest.checkpoint["sha256"] == sha256_file(exported["ckpt"])
    assert manifest.mirror is True  # the stream embeds each crop with its mirror image unless --no-mirror
    rgb = manifest.pick("embedder", "rgb", "fp16", "onnx")
    assert rgb.inputs[0].shape == (-1, cfg.height, cfg.width, 3) and rgb.outputs[0].dtype == "float32"
    parity = manifest.parity
    assert parity["verified"] is True
    gates = parity["onnx"]["gates"]
    assert len(gates) == 11 and all(g["passed"] for g in gates)
    assert parity["onnx"]["rgb"]["crops"] >= 64 and parity["onnx"]["rgb"]["cosine_min"] >= 0.99999


@pytest.mark.parametrize("batch", [1, 3, 7])
def test_dynamic_batch(exported, batch):
    model, cfg = load_model(exported["ckpt"])
    images = P.synthvi_crops(cfg.model.height, cfg.model.width, count=batch).images
    x = P._normalise(model, images["ir"])
    with torch.no_grad():
        want = model.embed(x, "ir").numpy()
        p, a = model.encode(x, "ir")
        image = model.decode(p, a)
    for file, tol in (("ir.onnx", 1e-4), ("ir.fp16.onnx", 5e-3)):
        got = P.run_onnx(exported["out"] / file, {"images": images["ir"]}, batch=batch)
        assert got["embedding"].shape == (batch, cfg.model.embedding_dim)
        np.testing.assert_allclose(got["embedding"], want, atol=tol)
    got = P.run_onnx(exported["out"] / "generator.onnx", {"prototype": p.numpy(), "attribute": a.numpy()}, batch=batch)
    mean, std = torch.tensor(cfg.model.mean).view(1, 3, 1, 1), torch.tensor(cfg.model.std).view(1, 3, 1, 1)
    np.testing.assert_allclose(got["image"], ((image * std + mean) * 255).clamp(0, 255).numpy(), atol=1e-3)


def test_corrupted_initializer_fails_the_gate(exported, tmp_path):
    for g in GRAPHS:
        shutil.copy(exported["out"] / f"{g}.onnx", tmp_path / f"{g}.onnx")
    graph = onnx.load(str(tmp_path / "rgb.onnx"))
    conv = next(n for n in graph.graph.node if n.op_type == "Conv" and n.name.startswith("/attribute/"))
    weight = next(t for t in graph.graph.initializer if t.name == conv.input[1])
    values = numpy_helper.to_array(weight).copy()
    values.flat[0] += 0.05  # one weight of the attribute encoder's first conv
    weight.CopyFrom(numpy_helper.from_array(values, weight.name))
    onnx.save(graph, str(tmp_path / "rgb.onnx"))
    model, cfg = load_model(exported["ckpt"])
    gates, metrics = verify(model, tmp_path, ["fp32"], P.synthvi_crops(cfg.model.height, cfg.model.width, count=16))
    failed = {(g.artifact, g.metric) for g in gates if not g.passed}
    assert ("rgb", "max |diff|") in failed
    assert not any(artifact in ("ir", "generator") for artifact, _ in failed)
    assert metrics["rgb"]["passed"] is False and metrics["ir"]["passed"] is True


def test_fp16_graphs_keep_norms_fp32_and_weights_fp16(exported):
    for g in GRAPHS:
        model = onnx.shape_inference.infer_shapes(onnx.load(str(exported["out"] / f"{g}.fp16.onnx")),
                                                  strict_mode=True, check_type=True)
        types = {v.name: v.type.tensor_type.elem_type for v in [*model.graph.value_info, *model.graph.input,
                                                                 *model.graph.output]}
        types.update({t.name: t.data_type for t in model.graph.initializer})
        nodes = model.graph.node
        for n in nodes:
            if n.op_type in ("InstanceNormalization", "ReduceMean", "ReduceSum", "ReduceL2", "Sqrt", "Pow", "Resize"):
                assert types[n.input[0]] == TensorProto.FLOAT, n.name
            if n.op_type == "Conv":
                assert types[n.input[1]] == TensorProto.FLOAT16, n.name
            if n.name.startswith("/preprocess/") and n.op_type in ("Mul", "Add"):
                assert types[n.output[0]] == TensorProto.FLOAT, n.name
        assert all(o.type.tensor_type.elem_type == TensorProto.FLOAT for o in model.graph.output)
        if g == "generator":  # the custom LayerNorm scope (its Sub / Div too) stays FP32
            ln = [types.get(n.output[0]) for n in nodes  # the converter's boundary Casts aside
                  if n.name.startswith("/decoder/up/up.1/up.1.2/") and n.op_type != "Cast"]
            assert ln.count(TensorProto.FLOAT) >= 8 and TensorProto.FLOAT16 not in ln
        else:
            assert model.graph.input[0].type.tensor_type.elem_type == TensorProto.UINT8


def test_static_tensorrt_check_passes_on_exports(exported):
    for g in GRAPHS:
        for suffix in (".onnx", ".fp16.onnx"):
            assert check_tensorrt(exported["out"] / f"{g}{suffix}") == []


def _tiny_graph(nodes, inputs, outputs, initializers=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_static_tensorrt_check_rejects_bad_graphs():
    f32 = lambda name, shape: helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)  # noqa: E731
    c = 4
    stats = [numpy_helper.from_array(np.ones(c, np.float32), n) for n in ("s", "b", "m", "v")]
    bn = helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y", "rm", "rv"], training_mode=1)
    problems = check_tensorrt(_tiny_graph([bn], [f32("x", [2, c, 3, 3])], [f32("y", [2, c, 3, 3])], stats))
    assert any("training-mode BatchNormalization" in p for p in problems)
    bn_eval = helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"])
    assert check_tensorrt(_tiny_graph([bn_eval], [f32("x", [2, c, 3, 3])], [f32("y", [2, c, 3, 3])], stats)) == []

    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float16), "scales")
    resize = helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="nearest")
    problems = check_tensorrt(_tiny_graph([resize], [f32("x", [1, c, 3, 3])], [f32("y", [1, c, 6, 6])], [scales]))
    assert any("scales must be float32" in p for p in problems)

    half = [numpy_helper.from_array(np.ones(c, np.float16), n) for n in ("s16", "b16")]
    inorm = helper.make_node("InstanceNormalization", ["x", "s16", "b16"], ["y"])
    problems = check_tensorrt(_tiny_graph([inorm], [f32("x", [1, c, 3, 3])], [f32("y", [1, c, 3, 3])], half))
    assert any("different dtypes" in p for p in problems)

    pads = helper.make_tensor_value_info("pads", TensorProto.INT64, [8])
    pad = helper.make_node("Pad", ["x", "pads"], ["y"], mode="reflect")
    problems = check_tensorrt(_tiny_graph([pad], [f32("x", [1, c, 3, 3]), pads], [f32("y", None)]))
    assert any("pads must be an initializer" in p for p in problems)

    erf = helper.make_node("Erf", ["x"], ["y"])
    assert any("op not in" in p for p in check_tensorrt(_tiny_graph([erf], [f32("x", [2])], [f32("y", [2])])))


def test_no_verify_is_recorded_and_bad_checkpoint_is_a_user_error(tmp_path, exported):
    result = run_export(exported["ckpt"], tmp_path / "m", ExportOptions(verify=False, mirror=False))
    assert result.ok and not result.gates
    manifest = load_manifest(tmp_path / "m")
    assert manifest.parity["verified"] is False and "skipped" in manifest.parity["note"]
    assert manifest.mirror is False  # hicmd export --no-mirror: the stream embeds each crop once
    assert {a.name for a in manifest.artifacts} == set(GRAPHS)

    from hicmd.commands.export import command

    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(HicmdError, match="not a readable checkpoint"):
        command(bad, out=tmp_path / "x")
    with pytest.raises(HicmdError, match="--trt-batch"):
        command(exported["ckpt"], out=tmp_path / "x", trt_batch="8")
    with pytest.raises(HicmdError, match="--batch '1:9:4'"):  # the old name still works, and is named in errors
        command(exported["ckpt"], out=tmp_path / "x", old_batch="1:9:4")


def _fingerprint(folder: Path) -> dict[str, str]:
    return {p.name: sha256_file(p) for p in sorted(folder.iterdir()) if p.is_file()}


def test_a_failed_export_leaves_the_previous_model_intact(exported, tmp_path, monkeypatch):
    import hicmd.export.pipeline as pipeline

    previous = tmp_path / "model"
    shutil.copytree(exported["out"], previous)
    before = _fingerprint(previous)
    failing = P.Gate("rgb", "cosine_min", 0.2, 0.99999, ">=")
    monkeypatch.setattr(pipeline, "verify", lambda *a, **k: ([failing], {}))
    result = run_export(exported["ckpt"], previous, ExportOptions(fp16=False))
    assert result.failed and result.manifest is None
    assert _fingerprint(previous) == before  # manifest and graphs untouched
    load_manifest(previous)  # and still a working model
    # an interrupted export (Ctrl-C, an error) likewise, and a failed export into a new folder leaves nothing
    monkeypatch.setattr(pipeline, "verify", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        run_export(exported["ckpt"], previous, ExportOptions(fp16=False))
    assert _fingerprint(previous) == before
    monkeypatch.setattr(pipeline, "verify", lambda *a, **k: ([failing], {}))
    run_export(exported["ckpt"], tmp_path / "new", ExportOptions(fp16=False))
    assert not (tmp_path / "new").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no staging folder left behind


def test_a_successful_export_replaces_the_previous_one_and_records_no_machine_path(exported, tmp_path):
    previous = tmp_path / "model"
    shutil.copytree(exported["out"], previous)
    (previous / "notes.txt").write_text("the user's own file")
    result = run_export(exported["ckpt"], previous, ExportOptions(fp16=False, verify=False))
    assert result.manifest == previous / "manifest.json" and all(f.parent == previous for f in result.files)
    manifest = load_manifest(previous)
    assert {a.precision for a in manifest.artifacts} == {"fp32"}
    assert (previous / "notes.txt").read_text() == "the user's own file"
    assert manifest.checkpoint["file"] == "tiny.pt"  # its name and hash, not where it was on this machine
    assert manifest.checkpoint["sha256"] == sha256_file(exported["ckpt"])
    assert str(exported["ckpt"].parent) not in (previous / "manifest.json").read_text()


def test_the_manifest_is_as_readable_as_the_graphs_it_names(exported):
    """A model folder is served by other users (Triton, a service account): manifest.json gets the mode every other
    file gets from the umask, not the 0600 of a private temporary file."""
    out = exported["out"]
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir() if p.suffix in (".json", ".onnx")}
    assert len(set(modes.values())) == 1, modes
