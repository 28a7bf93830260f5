"""`hicmd export` without the CLI: checkpoint -> ONNX (+ FP16, + engines) -> checks -> manifest.json.

Order: FP32 graphs, FP16 graphs, the static TensorRT op check, parity gates (ONNX Runtime CPU vs PyTorch),
engines, manifest. A failed gate or op check leaves the graphs on disk for inspection but writes no manifest, so no
runtime can pick up an export that did not pass; a missing TensorRT still writes the manifest (the ONNX files are
good) and reports the trtexec lines to run on the target.
"""

from __future__ import annotations

import datetime as _dt
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from hicmd.export import parity as P
from hicmd.export.fp16 import convert_fp16, fp32_scopes
from hicmd.export.graphs import (EMBEDDER_INPUT, GENERATOR_OUTPUT, EmbedderGraph,
                                 GeneratorGraph, export_embedder, export_generator)
from hicmd.export.opcheck import check_tensorrt
from hicmd.export.staging import Staging
from hicmd.runtime.manifest import MANIFEST_NAME, Artifact, InputSpec, Manifest, TensorSpec, sha256_file
from hicmd.modality import MODALITIES

__all__ = ["ExportOptions", "ExportResult", "run_export", "verify", "artifact_specs", "artifact_entry", "engine_shapes",
           "graph_file", "parity_crops"]

GRAPHS = ("rgb", "ir", "generator")
EMBEDDERS = MODALITIES  # the INT8 precision has embedders only: the generator stays FP32 / FP16
TIMING_CACHE = "timing.cache"
ENGINE_NOTE = ("TensorRT engines are not portable: they run only on the GPU model (compute capability) and the "
               "TensorRT version that built them; build them on the target device")


@dataclass(frozen=True)
class ExportOptions:
    fp16: bool = False
    engine: bool = False
    batch: tuple[int, int, int] = (1, 8, 32)  # optimisation profile min / opt / max
    opset: int = 17
    verify: bool = True
    data: str | None = None  # dataset spec for parity crops, e.g. "regdb:PATH"; None = SynthVI in memory
    workspace_gb: float = 2.0
    weak_fp16: bool = False  # TensorRT 10.x only: FP32 graph + BuilderFlag.FP16
    crops: int = 64
    int8: Any = None  # hicmd.export.int8.Int8Options: also write rgb/ir.int8.onnx, gated
    gate_clips: tuple[Path, ...] = ()  # clip folders with gt: the stream's gates measured on their people, not stills
    mirror: bool = True  # the stream embeds each crop with its mirror image (manifest "mirror"); gates measured so


@dataclass
class ExportResult:
    out: Path
    files: list[Path] = field(default_factory=list)
    gates: list[P.Gate] = field(default_factory=list)
    opcheck: dict[str, list[str]] = field(default_factory=dict)
    parity: dict[str, Any] = field(default_factory=dict)
    manifest: Path | None = None
    engine_problem: str | None = None  # why no engines were built
    stream_gates: dict[str, Any] = field(default_factory=dict)  # measured match / split / gallery gates
    trtexec: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # one line each, shown by the CLI (e.g. a skipped artifact)

    @property
    def failed(self) -> list[P.Gate]:
        return [g for g in self.gates if not g.passed]

    @property
    def ok(self) -> bool:
        return not self.failed and not any(self.opcheck.values()) and self.engine_problem is None


def _spec(name: str, shape: tuple[int, ...], dtype: str = "float32") -> TensorSpec:
    return TensorSpec(name, (-1, *shape), dtype)


def artifact_specs(cfg, graph: str) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """(inputs, outputs) of the embedder or generator graph, batch axis -1."""
    m = cfg.model
    codes = (_spec("prototype", m.prototype_shape), _spec("attribute", (m.attribute_dim,)))
    if graph == "generator":
        return codes, (_spec(GENERATOR_OUTPUT, (3, m.height, m.width)),)
    return (_spec(EMBEDDER_INPUT, (m.height, m.width, 3), "uint8"),), (_spec("embedding", (m.embedding_dim,)),
                                                                         *codes)


def engine_shapes(cfg, graph: str, batch: tuple[int, int, int]) -> dict:
    """Optimisation-profile shapes (min, opt, max) per input of a graph."""
    inputs, _ = artifact_specs(cfg, graph)
    return {t.name: tuple((b, *t.shape[1:]) for b in batch) for t in inputs}


def artifact_entry(cfg, graph: str, precision: str, fmt: str, path: Path, tensorrt: dict | None = None) -> Artifact:
    """The manifest's entry for one written graph or engine: its tensors, precision and hash."""
    inputs, outputs = artifact_specs(cfg, graph)
    name = graph if precision == "fp32" else f"{graph}.{precision}"
    return Artifact(name=name, role="generator" if graph == "generator" else "embedder",
                    modality=None if graph == "generator" else graph, precision=precision, format=fmt,
                    file=path.name, sha256=sha256_file(path), inputs=inputs, outputs=outputs, tensorrt=tensorrt)


def graph_file(graph: str, precision: str, fmt: str = "onnx") -> str:
    """The file name of a graph ("rgb", "ir", "generator") at a precision: rgb.onnx, rgb.fp16.onnx, ir.int8.engine."""
    return f"{graph}.{fmt}" if precision == "fp32" else f"{graph}.{precision}.{fmt}"


def verify(model, folder: Path, precisions: list[str], crops: P.Crops,
           runner: Callable[[Path], Callable] | None = None, fmt: str = "onnx") -> tuple[list[P.Gate], dict]:
    """Parity gates for the graphs (or engines) of `precisions` in `folder` against the PyTorch `model`.

    `runner(path)` returns a feeds -> outputs callable (default: ONNX Runtime CPU)."""
    ref = P.reference(model, crops)
    gates: list[P.Gate] = []
    metrics: dict[str, Any] = {"source": crops.source}
    n = len(ref.image) if ref.image is not None else 0
    for precision in precisions:
        run = (lambda path, feeds: P.run_batches(runner(path), feeds)) if runner else P.run_onnx
        embeddings = {}
        for modality in MODALITIES:
            name = modality if precision == "fp32" else f"{modality}.{precision}"
            out = run(folder / graph_file(modality, precision, fmt), {EMBEDDER_INPUT: crops.images[modality]})
            embeddings[modality] = out["embedding"]
            g, metrics[name] = P.embedder_gates(name, precision, out["embedding"], ref.embedding[modality],
                                                fmt == "engine")
            metrics[name]["passed"] = all(x.passed for x in g)
            gates += g
        if precision != "fp32":  # ranking agreement of RGB queries against the IR gallery
            gate, extra = P.rank1_gate(f"rgb->ir.{precision}", embeddings["rgb"], embeddings["ir"],
                                       ref.embedding["rgb"], ref.embedding["ir"], *P.REDUCED[precision][2:])
            gates.append(gate)
            metrics[f"rank1.{precision}"] = {**extra, "passed": gate.passed}
        if precision == "int8":
            continue
        name = "generator" if precision == "fp32" else f"generator.{precision}"
        out = run(folder / graph_file("generator", precision, fmt),
                  {"prototype": ref.prototype["rgb"][:n], "attribute": ref.attribute["ir"][:n]})
        g, metrics[name] = P.generator_gates(name, precision, out[GENERATOR_OUTPUT], ref.image,
                                                 fmt == "engine")
        metrics[name]["passed"] = all(x.passed for x in g)
        gates += g
    metrics["gates"] = [{"artifact": g.artifact, "metric": g.metric, "value": g.value, "op": g.op,
                         "threshold": g.threshold, "passed": g.passed} for g in gates]
    return gates, metrics


def parity_crops(cfg, options: ExportOptions) -> P.Crops:
    """The crops the parity gates compare on: the dataset's (--data) or SynthVI's own."""
    m = cfg.model
    if options.data:
        return P.dataset_crops(options.data, m.height, m.width, options.crops)
    return P.synthvi_crops(m.height, m.width, options.crops)


def _opcheck(path: Path, precision: str) -> list[str]:
    """TensorRT 10 static op check; an INT8 graph is checked in the form TensorRT builds it from."""
    if precision != "int8":
        return check_tensorrt(path)
    import onnx

    from hicmd.export.int8 import tensorrt_int8

    return check_tensorrt(tensorrt_int8(onnx.load(str(path))))


def _stream_gates(cfg, out: Path, options: ExportOptions, per_modality: int = 1200) -> dict[str, Any]:
    """The match / split / gallery gates of this model, measured with its exported FP32 graphs (export/gates.py)
    on the people of `options.gate_clips` if given, else on the --data test split."""
    from hicmd.export.gates import GateClipsError, footage_images, measure_gates, onnx_embedder

    runners = {m: onnx_embedder(out / graph_file(m, "fp32"), mirror=options.mirror) for m in MODALITIES}
    embed = lambda x, m: runners[m](x)  # noqa: E731
    if options.gate_clips:  # clips the user named for it: too few people in them fails the export
        try:
            images, pids, scene = footage_images(list(options.gate_clips), cfg.model.height, cfg.model.width)
            people = len(set(pids["rgb"].tolist()) & set(pids["ir"].tolist()))
            return measure_gates(embed, images, pids, f"footage: {len(options.gate_clips)} clips, {people} people "
                                 "seen by both cameras, cut at their gt boxes", scene=scene)
        except ValueError as exc:
            raise GateClipsError(f"{exc}; give clips with more people in view of both cameras") from None
    from hicmd.data import load_split, parse_dataset_spec
    from hicmd.data.io import read_image

    kind, root, trial = parse_dataset_spec(options.data)
    records = load_split(kind, root, "query", trial) + load_split(kind, root, "gallery", trial)
    images, pids = {}, {}
    for modality in MODALITIES:
        recs = sorted((r for r in records if r.modality == modality), key=lambda r: (r.pid, str(r.path)))
        recs = [recs[i] for i in np.linspace(0, len(recs) - 1, min(per_modality, len(recs))).round().astype(int)]
        images[modality] = np.stack([read_image(r.path, cfg.model.height, cfg.model.width) for r in recs])
        pids[modality] = np.asarray([r.pid for r in recs])
    try:
        return measure_gates(embed, images, pids, f"{kind} test split, {trial=}")
    except ValueError as exc:
        return {"note": f"not measured: {exc}"}


def run_export(checkpoint: str | Path, out: str | Path, options: ExportOptions = ExportOptions(),
               step: Callable[[str], None] = lambda _: None) -> ExportResult:
    """Export `checkpoint` into folder `out`. Raises CheckpointError for a bad checkpoint; gate failures and a
    missing TensorRT are reported in the result (check `result.ok`)."""
    from hicmd.checkpoint import load_model

    checkpoint, final = Path(checkpoint), Path(out)
    step(f"loading {checkpoint}")
    model, cfg = load_model(checkpoint)
    if final.exists() and not final.is_dir():
        raise NotADirectoryError(f"--out {final} exists and is not a folder")
    stage = Staging(final)  # the previous export in `final` stays intact until every gate has passed
    if options.engine:  # re-exporting on the same GPU reuses the previous build's tactic timings (minutes saved)
        stage.carry(TIMING_CACHE)
    try:
        result = _export(model, cfg, checkpoint, stage.path, options, step)
        if result.manifest is not None:
            stage.commit()
    finally:
        stage.discard()
    if result.manifest is None:
        result.out, result.files = final, []
        return result
    result.out, result.manifest = final, final / MANIFEST_NAME
    result.files = [stage.final(f) for f in result.files]
    return result


def _export(model, cfg, checkpoint: Path, out: Path, options: ExportOptions,  # noqa: ANN001 - torch types
            step: Callable[[str], None]) -> ExportResult:
    import hicmd
    from hicmd.config import config_to_dict

    result = ExportResult(out)
    artifacts: list[Artifact] = []
    wrappers = {"rgb": EmbedderGraph(model, "rgb"), "ir": EmbedderGraph(model, "ir"),
                "generator": GeneratorGraph(model)}
    precisions = ["fp32"] + (["fp16"] if options.fp16 else []) + (["int8"] if options.int8 else [])
    if options.int8:  # read first: a bad --calib fails before minutes of export
        from hicmd.export.int8 import read_calibration

        step(f"INT8: reading {options.int8.crops} calibration crops per modality from {options.int8.calib}")
        calibration = read_calibration(options.int8, cfg.model.height, cfg.model.width)
    for g in GRAPHS:
        step(f"exporting {graph_file(g, 'fp32')}")
        path = out / graph_file(g, "fp32")
        if g == "generator":
            export_generator(model, path, options.opset)
        else:
            export_embedder(model, g, path, options.opset)
        result.files.append(path)
    if options.fp16:
        for g in GRAPHS:
            step(f"converting {graph_file(g, 'fp16')}")
            convert_fp16(out / graph_file(g, "fp32"), out / graph_file(g, "fp16"), fp32_scopes(wrappers[g]))
            result.files.append(out / graph_file(g, "fp16"))
    openvino_int8: list[Artifact] = []  # OpenVINO's own INT8 IRs, when nncf is installed
    if options.int8:
        from hicmd.export.int8 import write_int8
        from hicmd.export.int8_openvino import nncf_stage

        result.parity["int8"] = write_int8(out, options.int8, calibration, step)
        result.files += [out / graph_file(g, "int8") for g in EMBEDDERS]
        openvino_int8 = nncf_stage(out, calibration, result, lambda *a: artifact_entry(cfg, *a), step)
    for p in precisions:
        for g in EMBEDDERS if p == "int8" else GRAPHS:
            result.opcheck[graph_file(g, p)] = _opcheck(out / graph_file(g, p), p)
            artifacts.append(artifact_entry(cfg, g, p, "onnx", out / graph_file(g, p)))
    artifacts += openvino_int8
    if options.verify:
        step("parity: ONNX Runtime (CPU) vs PyTorch")
        crops = parity_crops(cfg, options)
        gates, metrics = verify(model, out, precisions, crops)
        result.gates += gates
        result.parity["onnx"] = metrics
        if openvino_int8:  # OpenVINO's own INT8: the Q/DQ graphs' gates
            from hicmd.export.int8_openvino import nncf_gates

            step("parity: OpenVINO's own INT8 (NNCF) vs PyTorch")
            _, result.parity["int8"]["nncf"]["parity"] = nncf_gates(model, out, crops)
        if importlib.util.find_spec("openvino") is not None:  # optional: recorded, gates the runtime's BF16
            from hicmd.export.openvino_check import openvino_parity

            step("parity: OpenVINO (FP32, BF16, INT8) vs ONNX Runtime FP32")
            result.parity["openvino"] = openvino_parity(out, crops, precisions)
        if not result.failed:
            from hicmd.export.int8_stage import protocol_stage

            result.gates += protocol_stage(cfg, out, options, result, step)
        if openvino_int8:  # OpenVINO's own INT8 is kept only if all its gates passed
            from hicmd.export.int8_openvino import refuse_failed_nncf

            refuse_failed_nncf(out, result, artifacts)
    if result.failed or any(result.opcheck.values()):
        return result
    if options.data or options.gate_clips:
        step(f"measuring the stream's distance gates on the {'gate clips' if options.gate_clips else 'test split'}")
        result.stream_gates = _stream_gates(cfg, out, options)
    if options.engine:
        from hicmd.export.engines import build_engines

        artifacts += build_engines(model, cfg, out, options, result, step)
        if result.failed:
            return result
    result.parity["verified"] = options.verify
    if not options.verify:
        result.parity["note"] = "parity gates skipped (--no-verify)"
    result.parity["opcheck"] = {k: "TensorRT 10.x static op check passed" for k in result.opcheck}
    layout = model.layout
    manifest = Manifest(
        config_name=cfg.name, config=config_to_dict(cfg),
        checkpoint={"file": checkpoint.name, "sha256": sha256_file(checkpoint),
                    "num_classes": model.num_classes},
        input=InputSpec(EMBEDDER_INPUT, "NHWC", "uint8", "RGB", cfg.model.height, cfg.model.width,
                        tuple(cfg.model.mean), tuple(cfg.model.std)),
        embedding_dim=cfg.model.embedding_dim, attribute_dim=cfg.model.attribute_dim,
        prototype_shape=tuple(cfg.model.prototype_shape),
        attribute_layout={"chunks": layout.chunks, "chunk": layout.chunk,
                          **{k: list(v) for k, v in layout.offsets().items()}},
        opset=options.opset, artifacts=tuple(artifacts), parity=_plain(result.parity),
        gates=_plain(result.stream_gates),
        hicmd_version=hicmd.__version__, macs_per_image=_macs(model), mirror=options.mirror,
        created=_dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
    )
    step("writing manifest.json")
    result.manifest = manifest.save(out)
    return result


def _macs(model) -> int:  # noqa: ANN001 - torch types
    """Multiply-adds per image of the embedder graph (recorded so a torch-free bench can give GFLOP/s)."""
    import torch

    from hicmd.model.summary import count_macs

    cfg = model.cfg
    return count_macs(EmbedderGraph(model, "rgb").eval(), torch.zeros(1, cfg.height, cfg.width, 3, dtype=torch.uint8))


def _plain(value: Any) -> Any:
    """numpy scalars -> Python numbers, inf/nan -> strings, so the manifest is strict JSON."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if np.isfinite(value) else str(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value
