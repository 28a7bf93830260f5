"""OpenVINO's own INT8 of the embedders: `rgb.int8.nncf.xml` / `ir.int8.nncf.xml` (+ `.bin`), NNCF post-training
quantization of the FP32 graphs, written by `hicmd export --int8` beside the Q/DQ graphs when nncf and openvino
are installed (pip install 'hicmd[openvino]').

Why a second INT8 artifact: OpenVINO runs NNCF's quantization of the paper embedder 1.2-1.3x faster than the
same network's Q/DQ graph (README, INT8 section): NNCF places its FakeQuantize nodes where OpenVINO's CPU plugin
fuses them, the Q/DQ graph is placed for ONNX Runtime and TensorRT. It is calibrated on the very crops the Q/DQ
graph is (hicmd.export.int8.read_calibration), and it must pass the very gates the Q/DQ graph does (cosine mean /
min and rank-1 agreement against PyTorch, R1 / mAP drop under the dataset's protocol). It is kept only if they
pass: a failure removes the IRs, says so in one line and records why, and OpenVINO runs the Q/DQ graphs (which
passed their own gates) for --precision int8; the export goes on. Its float parts stay FP32 (saved without FP16
weight compression). The OpenVINO backend runs it for `--precision int8` when the manifest has it.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

from hicmd.modality import MODALITIES

__all__ = ["NNCF", "nncf_problem", "quantize_openvino", "write_nncf", "nncf_artifacts", "nncf_stage", "nncf_gates",
           "nncf_embedders", "refuse_failed_nncf"]

NNCF = "int8.nncf"  # file infix and artifact suffix: rgb.int8.nncf.xml, artifact "rgb.int8.nncf"


def nncf_problem() -> str | None:
    """Why OpenVINO's own INT8 cannot be made here (one line), or None."""
    missing = [m for m in ("openvino", "nncf") if importlib.util.find_spec(m) is None]
    if missing:
        return f"{' and '.join(missing)} not installed (pip install 'hicmd[openvino]')"
    return None


def _files(folder: Path, modality: str) -> tuple[Path, Path]:
    return folder / f"{modality}.{NNCF}.xml", folder / f"{modality}.{NNCF}.bin"


def quantize_openvino(src: str | Path, dst: str | Path, images: np.ndarray) -> dict[str, Any]:
    """FP32 embedder graph at `src` -> OpenVINO INT8 IR at `dst` (.xml, with its .bin beside it), calibrated on
    `images` (uint8 NHWC, one crop per statistics sample); returns what is quantized."""
    os.environ.setdefault("NNCF_CI", "1")  # NNCF sends usage telemetry unless it believes it runs in CI
    import nncf
    import openvino as ov
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    from hicmd.export.int8 import _quiet

    model = ov.Core().read_model(str(src))
    samples = nncf.Dataset([images[i:i + 1] for i in range(len(images))])
    # activation ranges: min / max over every crop. NNCF's default (a mean over the crops of each one's range)
    # clips what one crop in a few dozen reaches: cosine min 0.977-0.979 to FP32 on the tests' trained tiny model
    # (the gate is 0.98) against 0.9976 with min / max, and 0.969 / 0.139 with its mean-quantile set
    ranges = AdvancedQuantizationParameters(activations_range_estimator_params=RangeEstimatorParametersSet.MINMAX)
    with _quiet():
        quantized = nncf.quantize(model, samples, subset_size=len(images), target_device=nncf.TargetDevice.CPU,
                                  preset=nncf.QuantizationPreset.PERFORMANCE,  # symmetric: the CPU's fast kernels
                                  advanced_parameters=ranges)
    ov.save_model(quantized, str(dst), compress_to_fp16=False)  # the float parts stay FP32
    return fake_quantized(quantized)


def fake_quantized(model: Any) -> dict[str, Any]:
    """The op types fed by a FakeQuantize (what runs in INT8), and the FakeQuantize count."""
    fed: dict[str, int] = {}
    count = 0
    for op in model.get_ordered_ops():
        if op.get_type_name() != "FakeQuantize":
            continue
        count += 1
        for target in op.output(0).get_target_inputs():
            kind = target.get_node().get_type_name()
            fed[kind] = fed.get(kind, 0) + 1
    return {"fake_quantize": count, "quantized": dict(sorted(fed.items()))}


def write_nncf(folder: Path, calibration: tuple[dict[str, np.ndarray], dict],
               step: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """`rgb.int8.nncf.xml` / `ir.int8.nncf.xml` (+ .bin) in `folder` from its FP32 graphs; the manifest record."""
    import nncf
    import openvino

    images, _ = calibration
    record: dict[str, Any] = {
        "tool": f"nncf {nncf.__version__} quantize (OpenVINO {openvino.__version__.split('-')[0]} backend), "
                "preset performance, target CPU, activation ranges min / max",
        "calibration": "the Q/DQ graphs' crops (parity.int8.calibration)",
        "float": "FP32 (saved without FP16 weight compression)",
    }
    for modality in MODALITIES:
        xml, _ = _files(folder, modality)
        step(f"INT8: OpenVINO's own INT8 {xml.name} (NNCF, {len(images[modality])} crops)")
        record[f"{modality}.{NNCF}"] = quantize_openvino(folder / f"{modality}.onnx", xml, images[modality])
    return record


def nncf_artifacts(folder: Path, make: Callable[[str, str, str, Path], Any]) -> list[Any]:
    """The manifest artifacts of the IRs: `make(graph, precision, format, path)` (the pipeline's), renamed and
    with the .bin hashed beside the .xml."""
    from hicmd.runtime.manifest import sha256_file

    artifacts = []
    for modality in MODALITIES:
        xml, weights = _files(folder, modality)
        artifact = make(modality, "int8", "openvino", xml)
        artifacts.append(dataclasses.replace(artifact, name=f"{modality}.{NNCF}",
                                             weights={"file": weights.name, "sha256": sha256_file(weights)}))
    return artifacts


def nncf_stage(folder: Path, calibration: tuple[dict[str, np.ndarray], dict], result: Any,
               make: Callable[[str, str, str, Path], Any], step: Callable[[str], None]) -> list[Any]:
    """The export's step: write the IRs (recorded in `result.parity["int8"]["nncf"]`) and return their artifacts,
    or, without nncf / openvino, record and note in one line why they were skipped and return none."""
    problem = nncf_problem()
    if problem:
        result.parity["int8"]["nncf"] = {"skipped": problem}
        result.notes.append(f"OpenVINO's own INT8 (NNCF, {NNCF}.xml) skipped: {problem}; OpenVINO runs the Q/DQ "
                            "graphs for --precision int8")
        return []
    result.parity["int8"]["nncf"] = write_nncf(folder, calibration, step)
    result.files += [f for m in MODALITIES for f in _files(folder, m)]
    return nncf_artifacts(folder, make)


def _open(path: Path, threads: int | None = None):
    from hicmd.runtime.backends.openvino import OpenVinoBackend

    return OpenVinoBackend(path, inference="fp32", threads=threads, weights=path.with_suffix(".bin"))


def nncf_gates(model: Any, folder: Path, crops: Any) -> tuple[list[Any], dict[str, Any]]:
    """The Q/DQ graph's parity gates (cosine mean / min, rank-1 agreement vs PyTorch) for the IRs, run by
    OpenVINO; gate names end in `.nncf`."""
    from hicmd.export.parity import Gate
    from hicmd.export.pipeline import verify

    opened: list[Any] = []

    def runner(path: Path):
        opened.append(_open(path))
        return opened[-1].run

    try:
        gates, metrics = verify(model, folder, ["int8"], crops, runner, fmt="nncf.xml")
    finally:
        for backend in opened:
            backend.close()
    gates = [Gate(f"{g.artifact}.nncf", g.metric, g.value, g.threshold, g.op) for g in gates]
    metrics["gates"] = [{**g, "artifact": f"{g['artifact']}.nncf"} for g in metrics["gates"]]
    metrics["passed"] = all(g.passed for g in gates)
    return gates, metrics


def nncf_embedders(folder: Path, threads: int | None = None) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """images -> embeddings of each modality's IR (the protocol gate's graphs)."""
    out = {}
    for modality in MODALITIES:
        backend = _open(_files(folder, modality)[0], threads)
        out[modality] = lambda x, b=backend: b.run({"images": x})["embedding"]
    return out


def refuse_failed_nncf(folder: Path, result: Any, artifacts: list[Any]) -> None:
    """Drop the IRs (files, artifacts, record) when any of their gates (parity or protocol) failed."""
    record = result.parity["int8"].get("nncf", {})
    gates = record.get("parity", {}).get("gates", []) + record.get("protocol", {}).get("gates", [])
    failed = [g for g in gates if not g.get("passed", True)]
    if not failed:
        return
    for modality in MODALITIES:
        record.pop(f"{modality}.{NNCF}", None)
        for path in _files(folder, modality):
            path.unlink(missing_ok=True)
            if path in result.files:
                result.files.remove(path)
    artifacts[:] = [a for a in artifacts if a.format != "openvino"]
    reasons = "; ".join(f"{g['artifact']} {g['metric']} {g['value']:.4g} (gate {g['threshold']})" for g in failed)
    record["refused"] = reasons
    result.notes.append(f"OpenVINO's own INT8 (NNCF) refused by its gates ({reasons}): OpenVINO runs the Q/DQ graphs "
                        "for --precision int8")
