"""OpenVINO parity at export (when openvino is installed): the precisions OpenVINO would run, measured on the
parity crops against the FP32 graph on ONNX Runtime and recorded in manifest.json under parity.openvino.

- fp32: the FP32 graphs with FP32 inference (cosine min >= 0.99999, as ONNX Runtime's);
- bf16: the FP32 graphs with BF16 inference, where the CPU has it (INT8/BF16 thresholds: cosine mean >= 0.995,
  min >= 0.98, rank-1 agreement); the runtime's `--precision auto` on OpenVINO uses BF16 only when this passed;
- int8: the INT8 Q/DQ graphs (same thresholds as on ONNX Runtime).
A failure here does not stop the export (OpenVINO is optional): it is recorded, and the runtime refuses or skips the
precision that failed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hicmd.export import parity as P
from hicmd.modality import MODALITIES

__all__ = ["openvino_parity"]


def openvino_parity(folder: Path, crops: P.Crops, precisions: list[str], threads: int | None = None) -> dict:
    from hicmd.runtime.backends.openvino import OpenVinoBackend, openvino_version, supports_bf16

    ref = {m: P.run_onnx(folder / f"{m}.onnx", {"images": crops.images[m]})["embedding"] for m in MODALITIES}
    plans = [("fp32", "fp32", "fp32")]  # (record name, graph, inference)
    if supports_bf16():
        plans.append(("bf16", "fp32", "bf16"))
    if "int8" in precisions:
        plans.append(("int8", "int8", "fp32"))
    record: dict[str, Any] = {"version": openvino_version(), "source": crops.source}
    for name, graph, inference in plans:
        out: dict[str, np.ndarray] = {}
        entry: dict[str, Any] = {"graph": graph, "inference": inference}
        gates: list[P.Gate] = []
        for m in MODALITIES:
            file = folder / (f"{m}.onnx" if graph == "fp32" else f"{m}.{graph}.onnx")
            backend = OpenVinoBackend(file, inference=inference, threads=threads)
            try:
                out[m] = P.run_batches(backend.run, {"images": crops.images[m]})["embedding"]
            finally:
                backend.close()
            g, entry[m] = P.embedder_gates(f"openvino {m}.{name}", "fp32" if name == "fp32" else name, out[m], ref[m])
            gates += g[:1] if name == "fp32" else g  # FP32 inference: the cosine gate (max |diff| is ORT's own)
        if name != "fp32":
            gate, entry["rank1"] = P.rank1_gate(f"openvino rgb->ir.{name}", out["rgb"], out["ir"], ref["rgb"],
                                                ref["ir"], *P.REDUCED[name][2:])
            gates.append(gate)
        entry["gates"] = [{"artifact": g.artifact, "metric": g.metric, "value": g.value, "op": g.op,
                           "threshold": g.threshold, "passed": g.passed} for g in gates]
        entry["passed"] = all(g.passed for g in gates)
        record[name] = entry
    return record
