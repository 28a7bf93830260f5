"""The stage of `hicmd export` that runs after the graphs are written and their parity gates have passed
(hicmd.export.pipeline calls it): the R1 / mAP gates under the dataset's protocol of every reduced-precision
path."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from hicmd.export.parity import Gate

__all__ = ["protocol_stage"]


def protocol_stage(cfg: Any, out: Path, options: Any, result: Any, step: Callable[[str], None]) -> list[Gate]:
    """R1 / mAP vs FP32 under the dataset's protocol, when `--data` (else `--calib`) has a test split, of every
    reduced-precision path the export wrote or measured, scored in one pass: the INT8 Q/DQ graphs (ONNX Runtime)
    and OpenVINO's own INT8, whose gates are returned (a failure stops the export), and OpenVINO BF16 / INT8 on the
    Q/DQ graphs, whose gates join their `parity.openvino` entries (a failure there makes the runtime refuse that
    precision, as their cosine gates do). Recorded either way."""
    from hicmd.data import DataError
    from hicmd.export.int8_gates import onnx_graphs, protocol_gates

    spec = options.data or (options.int8.calib if options.int8 else None)
    candidates = _candidates(out, result)
    if spec is None or not candidates:
        return []
    max_drop = options.int8.max_drop if options.int8 else DEFAULT_MAX_DROP
    records = {name: _record_of(result, name) for name in candidates}
    step(f"R1 / mAP vs FP32 under the {spec.split(':')[0]} protocol: {', '.join(candidates)}")
    try:
        measured = protocol_gates(spec, {"fp32": onnx_graphs(out, "fp32"), **candidates}, max_drop,
                                  cfg.model.height, cfg.model.width)
    except DataError as exc:
        for record in records.values():
            record["protocol"] = {"note": f"not measured: {exc}"}
        return []
    coarse = {s: v["one_query"] for s, v in next(iter(measured.values()))[1]["settings"].items()
              if v["one_query"] > max_drop}
    if coarse:  # the split cannot resolve the gate: a single query whose rank-1 changes fails it
        setting, worth = max(coarse.items(), key=lambda kv: kv[1])
        result.notes.append(f"the protocol gate cannot see less than one query: in the {spec.split(':')[0]} test "
                            f"split's {setting} setting one query's rank-1 is worth {worth:.2f} points, more than "
                            f"the {max_drop:g} allowed, so one changed query fails it; score on a larger test split "
                            f"(--data) or allow at least {worth:.2f} (--int8-max-drop)")
    stopping: list[Gate] = []
    for name, (gates, protocol) in measured.items():
        record = records[name]
        record["protocol"] = protocol
        if name == "int8.nncf":  # kept only if its gates pass (the pipeline drops it otherwise): never stops
            record["protocol"]["gates"] = [{**g, "op": "<="} for g in protocol["gates"]]
        elif name.startswith("openvino."):
            record["gates"] = record.get("gates", []) + [{**g, "op": "<="} for g in protocol["gates"]]
            record["passed"] = bool(record.get("passed", True)) and all(g.passed for g in gates)
        else:
            stopping += gates
    return stopping


DEFAULT_MAX_DROP = 1.0  # points, for OpenVINO BF16 when no --int8 (whose --int8-max-drop it would take) is given


def _candidates(out: Path, result: Any) -> dict[str, dict[str, Callable]]:
    """The graphs to score against FP32: name -> {modality: images -> embeddings}."""
    from hicmd.export.int8_gates import onnx_graphs

    candidates: dict[str, dict[str, Callable]] = {}
    int8 = result.parity.get("int8")
    if int8 is not None:
        candidates["int8"] = onnx_graphs(out, "int8")
        if "rgb.int8.nncf" in int8.get("nncf", {}):  # written (a skipped one records only why)
            from hicmd.export.int8_openvino import nncf_embedders

            candidates["int8.nncf"] = nncf_embedders(out)
    for name, entry in result.parity.get("openvino", {}).items():
        if name in ("bf16", "int8"):
            candidates[f"openvino.{name}"] = _openvino_graphs(out, entry["graph"], entry["inference"])
    return candidates


def _openvino_graphs(out: Path, graph: str, inference: str) -> dict[str, Callable]:
    from hicmd.modality import MODALITIES
    from hicmd.runtime.backends.openvino import OpenVinoBackend

    graphs = {}
    for m in MODALITIES:
        backend = OpenVinoBackend(out / (f"{m}.onnx" if graph == "fp32" else f"{m}.{graph}.onnx"), inference=inference)
        graphs[m] = lambda x, b=backend: b.run({"images": x})["embedding"]
    return graphs


def _record_of(result: Any, name: str) -> dict:
    """Where a candidate's protocol scores are recorded in the manifest's parity section."""
    if name == "int8":
        return result.parity["int8"]
    if name == "int8.nncf":
        return result.parity["int8"]["nncf"]
    return result.parity["openvino"][name.split(".", 1)[1]]
