"""OpenVINO's own INT8 (NNCF IRs beside the Q/DQ graphs), its gates and the runtime that runs it, and the protocol
(R1 / mAP) gates of OpenVINO BF16 / INT8. Uses the session's INT8 export (tests/conftest.py `int8_model`).

The NNCF tests skip only when nncf is genuinely absent (`make venv` installs it with the openvino extra).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
from hicmd.runtime.backends import BackendError
from hicmd.runtime.cpu import cpu_info
from hicmd.runtime.manifest import load_manifest

HAS_OPENVINO = importlib.util.find_spec("openvino") is not None
HAS_NNCF = HAS_OPENVINO and importlib.util.find_spec("nncf") is not None
needs_openvino = pytest.mark.skipif(not HAS_OPENVINO, reason="openvino is not installed (pip install hicmd[openvino])")
needs_nncf = pytest.mark.skipif(not HAS_NNCF, reason="nncf is not installed (pip install hicmd[openvino])")


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def _embed(manifest, modality: str = "ir", **kw) -> tuple[np.ndarray, str]:
    from hicmd.export.parity import synthvi_crops
    from hicmd.runtime.backends import open_backend

    backend = open_backend(manifest, "embedder", modality, threads=1, **kw)
    try:
        return backend.run({"images": synthvi_crops(80, 40, 16).images[modality]})["embedding"], backend.description
    finally:
        backend.close()


@needs_nncf
def test_nncf_artifact_is_written_hashed_and_gated(int8_model):
    result = int8_model["result"]
    assert result.ok, [(g.artifact, g.metric, g.value) for g in result.failed]
    manifest = load_manifest(int8_model["out"])
    irs = {a.name: a for a in manifest.artifacts if a.format == "openvino"}
    assert set(irs) == {"rgb.int8.nncf", "ir.int8.nncf"}
    for name, a in irs.items():
        assert a.precision == "int8" and a.file == f"{name}.xml" and a.weights["file"] == f"{name}.bin"
        assert manifest.verified_path(a) == int8_model["out"] / a.file  # both files match their sha256
    record = manifest.parity["int8"]["nncf"]
    assert record["tool"].startswith("nncf ") and record["rgb.int8.nncf"]["quantized"]["Convolution"] > 0
    gates = {(g["artifact"], g["metric"]): g for g in record["parity"]["gates"]}  # the Q/DQ graph's gates
    for name in ("rgb.int8.nncf", "ir.int8.nncf"):
        assert gates[name, "cosine mean"]["passed"] and gates[name, "cosine mean"]["threshold"] == 0.995
        assert gates[name, "cosine min"]["threshold"] == 0.98
    assert gates["rgb->ir.int8.nncf", "same rank-1"]["passed"]
    protocol = record["protocol"]  # and the protocol's R1 / mAP drop, scored in the same pass as the Q/DQ graph's
    assert set(protocol["settings"]) == {"v2t", "t2v"} and len(protocol["gates"]) == 4
    assert all(g["passed"] and g["artifact"].startswith("int8.nncf regdb") for g in protocol["gates"])
    assert "refused" not in record and not result.notes  # kept: every gate passed
    # its gates do not stop the export (a failing IR is dropped instead: test below), so they are not export gates
    assert not {g.artifact for g in result.gates} & {"rgb.int8.nncf", "ir.int8.nncf", "int8.nncf regdb v2t"}


@needs_nncf
def test_broken_nncf_calibration_is_refused(int8_model, tmp_path):
    """Calibrated on black images the IRs' ranges cannot hold real crops: their gates fail (and the export then
    drops the IRs: test_nncf_irs_that_fail_a_gate_are_dropped_and_the_export_goes_on)."""
    from hicmd.export.int8_openvino import nncf_gates, write_nncf
    from hicmd.export.parity import synthvi_crops

    from hicmd.checkpoint import load_model

    for g in ("rgb", "ir"):
        shutil.copy(int8_model["out"] / f"{g}.onnx", tmp_path / f"{g}.onnx")
    write_nncf(tmp_path, ({m: np.zeros((16, 80, 40, 3), np.uint8) for m in ("rgb", "ir")}, {}))
    model, _ = load_model(int8_model["ckpt"])
    gates, metrics = nncf_gates(model, tmp_path, synthvi_crops(80, 40, 32))
    failed = {(g.artifact, g.metric) for g in gates if not g.passed}
    assert ("rgb.int8.nncf", "cosine mean") in failed and ("ir.int8.nncf", "cosine mean") in failed
    assert metrics["passed"] is False


@needs_nncf
def test_openvino_backend_runs_the_nncf_ir_with_parity(int8_model, tmp_path):
    manifest = load_manifest(int8_model["out"])
    ref, _ = _embed(manifest, backend="onnxruntime", precision="fp32")
    out, text = _embed(manifest, backend="openvino", precision="int8")
    assert "ir.int8.nncf.xml" in text and "NNCF" in text, text
    assert _cosine(out, ref).mean() >= 0.995 and _cosine(out, ref).min() >= 0.98
    # the weights file is verified with the .xml: a swapped .bin runs nothing
    folder = tmp_path / "model"
    shutil.copytree(int8_model["out"], folder)
    (folder / "ir.int8.nncf.bin").write_bytes((folder / "rgb.int8.nncf.bin").read_bytes())
    with pytest.raises(BackendError, match="ir.int8.nncf.bin does not match the sha256"):
        _embed(load_manifest(folder), backend="openvino", precision="int8")
    # and it is confined to the model folder like every other file
    from hicmd.runtime.manifest import ManifestError

    data = json.loads((folder / "manifest.json").read_text())
    next(a for a in data["artifacts"] if a["format"] == "openvino")["weights"]["file"] = "../outside.bin"
    (folder / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ManifestError, match="leads outside the model folder"):
        load_manifest(folder)


@needs_openvino
def test_manifest_without_the_nncf_ir_falls_back_to_the_qdq_graph(int8_model, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(int8_model["out"], folder)
    data = json.loads((folder / "manifest.json").read_text())
    data["artifacts"] = [a for a in data["artifacts"] if a["format"] != "openvino"]
    (folder / "manifest.json").write_text(json.dumps(data))
    manifest = load_manifest(folder)
    if not manifest.parity["openvino"]["int8"]["passed"]:
        # only where OpenVINO's INT8 kernels saturate (x86 without VNNI; README, "INT8 on x86 without VNNI"): export
        # measured the Q/DQ graphs failing there, and without NNCF's IR the runtime refuses OpenVINO INT8
        assert cpu_info().u8s8_saturates, manifest.parity["openvino"]["int8"]
        with pytest.raises(BackendError, match="Q/DQ graphs failed its gates"):
            _embed(manifest, backend="openvino", precision="int8")
        return
    ref, _ = _embed(manifest, backend="onnxruntime", precision="fp32")
    out, text = _embed(manifest, backend="openvino", precision="int8")
    assert "ir.int8.onnx" in text and "the Q/DQ graph" in text, text
    assert _cosine(out, ref).mean() >= 0.995


def test_export_without_nncf_says_why_in_one_line(tmp_path, monkeypatch):
    from hicmd.export import int8_openvino

    monkeypatch.setattr(int8_openvino, "nncf_problem", lambda: "nncf not installed (pip install 'hicmd[openvino]')")
    result = SimpleNamespace(parity={"int8": {}}, notes=[], files=[])
    assert int8_openvino.nncf_stage(tmp_path, ({}, {}), result, lambda *a: None, lambda _: None) == []
    assert result.parity["int8"]["nncf"] == {"skipped": "nncf not installed (pip install 'hicmd[openvino]')"}
    (note,) = result.notes
    assert "skipped: nncf not installed" in note and "\n" not in note and result.files == []


@needs_openvino
def test_openvino_protocol_gates_refuse_a_failing_precision(int8_model, tmp_path):
    """OpenVINO BF16 / INT8 are gated on the R1 / mAP drop under the dataset's protocol (recorded in
    parity.openvino); a gate that fails (here: a threshold no model can meet) makes the runtime refuse them."""
    from hicmd.export.int8_stage import protocol_stage
    from hicmd.runtime.backends.openvino import supports_bf16

    folder = tmp_path / "model"
    shutil.copytree(int8_model["out"], folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    openvino = manifest["parity"]["openvino"]
    assert all(openvino[p]["protocol"]["settings"] for p in openvino if p in ("bf16", "int8"))  # export measured
    # every precision passed (OpenVINO INT8 on the Q/DQ graphs but where its kernels saturate: x86 without VNNI)
    assert "int8" in openvino and all(openvino[p]["passed"] or (p == "int8" and cpu_info().u8s8_saturates)
                                      for p in openvino if p in ("bf16", "int8"))
    parity = {"openvino": {p: {**e, "protocol": None, "gates": [g for g in e["gates"] if "drop" not in g["metric"]]}
                           for p, e in openvino.items() if p in ("bf16", "int8")}}
    result = SimpleNamespace(parity=parity, notes=[])
    cfg = SimpleNamespace(model=SimpleNamespace(height=80, width=40))
    options = SimpleNamespace(data=f"regdb:{int8_model['data']}", int8=SimpleNamespace(max_drop=-50.0))
    assert protocol_stage(cfg, folder, options, result, lambda _: None) == []  # OpenVINO's do not stop the export
    (note,) = result.notes  # no split can resolve a negative drop: the export says one query already fails it
    assert "cannot see less than one query" in note and "--int8-max-drop" in note
    for name, entry in parity["openvino"].items():
        assert entry["passed"] is False, name
        assert any(g["metric"] == "r1 drop (points)" and not g["passed"] for g in entry["gates"])
        assert set(entry["protocol"]["settings"]) == {"v2t", "t2v"}
    manifest["parity"]["openvino"].update(parity["openvino"])
    manifest["artifacts"] = [a for a in manifest["artifacts"] if a["format"] != "openvino"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    refused = load_manifest(folder)
    with pytest.raises(BackendError, match="failed its gates"):
        _embed(refused, backend="openvino", precision="int8")
    if supports_bf16():
        with pytest.raises(BackendError, match="failed its parity gates"):
            _embed(refused, backend="openvino", precision="bf16")
        _, text = _embed(refused, backend="openvino", precision="auto")
        assert "f32 inference" in text and "failed" in text


def test_auto_picks_openvino_on_intel_and_avx512_x86_cpus(monkeypatch):
    """OpenVINO's CPU kernels follow the instruction set, not the vendor (measured on AMD Zen 4, AVX-512: README);
    the line auto prints says which and why. AVX2-only CPUs: OpenVINO only for INT8 with its own IR (measured
    there); others (Arm): ONNX Runtime."""
    from hicmd.runtime.backends import choice
    from hicmd.runtime.cpu import CpuInfo

    for installed in (True, False):
        monkeypatch.setattr(choice.importlib.util, "find_spec", lambda name, i=installed: object() if i else None)
        amd512 = ("AuthenticAMD", {"avx2", "avx512f"}, "AuthenticAMD CPU with AVX-512", True)
        for vendor, flags, words, picked in (("GenuineIntel", {"avx2"}, "Intel CPU", True), amd512,
                                             ("AuthenticAMD", {"avx2"}, "has AVX2 only", False),
                                             ("AuthenticAMD", set(), "has no AVX-512", False),
                                             ("", set(), "has no AVX-512", False)):
            monkeypatch.setattr(choice, "cpu_info", lambda v=vendor, f=flags: CpuInfo("test", v, frozenset(f)))
            use, why = choice.openvino_choice()
            assert use is (installed and picked), (vendor, flags, installed, why)
            assert why.startswith("auto: OpenVINO" if use else "auto: ONNX Runtime") and words in why, why
            assert "\n" not in why and (use or not picked or "not installed" in why)
            # INT8 with OpenVINO's own INT8 IR in the folder: AVX2-only x86 takes OpenVINO too (measured faster
            # there), a CPU without AVX2 still does not
            use, why = choice.openvino_choice(nncf_int8=True)
            assert use is (installed and (picked or "avx2" in flags)), (vendor, flags, installed, why)
            assert "\n" not in why and (use or "avx2" not in flags or "not installed" in why), why


@needs_nncf
def test_auto_runs_int8_on_openvino_on_avx2_cpus_where_the_folder_has_its_ir(int8_model, monkeypatch):
    """On an AVX2-only AMD CPU `--backend auto` takes OpenVINO's own INT8 IR for `--precision int8` and ONNX Runtime
    for FP32, and ONNX Runtime for INT8 too once the folder holds no such IR."""
    from hicmd.runtime.backends import choice
    from hicmd.runtime.cpu import CpuInfo

    monkeypatch.setattr(choice, "cpu_info", lambda: CpuInfo("test", "AuthenticAMD", frozenset({"avx2", "fma"})))
    manifest = load_manifest(int8_model["out"])
    _, text = _embed(manifest, backend="auto", device="cpu", precision="int8")
    assert text.startswith("openvino") and "ir.int8.nncf" in text and "AVX2" in text, text
    _, text = _embed(manifest, backend="auto", device="cpu", precision="fp32")
    assert text.startswith("onnxruntime") and "has AVX2 only" in text, text
    without = dataclasses.replace(manifest, artifacts=[a for a in manifest.artifacts if a.format != "openvino"])
    _, text = _embed(without, backend="auto", device="cpu", precision="int8")
    assert text.startswith("onnxruntime") and "ir.int8.onnx" in text, text


def test_nncf_irs_that_fail_a_gate_are_dropped_and_the_export_goes_on(tmp_path):
    """Kept only if its gates pass: the IRs' files, artifacts and record go, a note says why, the rest stays."""
    from hicmd.export.int8_openvino import refuse_failed_nncf

    files = [tmp_path / f"{m}.int8.nncf.{e}" for m in ("rgb", "ir") for e in ("xml", "bin")]
    for f in files + [tmp_path / "rgb.int8.onnx"]:
        f.write_bytes(b"x")
    gate = {"artifact": "rgb.int8.nncf", "metric": "cosine min", "value": 0.5, "threshold": 0.98, "passed": False}
    record = {"rgb.int8.nncf": {}, "ir.int8.nncf": {}, "parity": {"gates": [gate]}}
    result = SimpleNamespace(parity={"int8": {"nncf": record}}, files=list(files), notes=[])
    artifacts = [SimpleNamespace(format="onnx", name="rgb.int8"), SimpleNamespace(format="openvino", name="rgb.nncf")]
    refuse_failed_nncf(tmp_path, result, artifacts)
    assert [a.format for a in artifacts] == ["onnx"] and result.files == []
    assert not any(f.exists() for f in files) and (tmp_path / "rgb.int8.onnx").exists()
    assert "rgb.int8.nncf" not in record and "cosine min" in record["refused"]
    assert len(result.notes) == 1 and "refused" in result.notes[0]
    gate["passed"] = True  # all passed: nothing happens
    record.pop("refused")
    kept = [SimpleNamespace(format="openvino", name="rgb.nncf")]
    refuse_failed_nncf(tmp_path, SimpleNamespace(parity={"int8": {"nncf": record}}, files=[], notes=[]), kept)
    assert len(kept) == 1 and "refused" not in record
