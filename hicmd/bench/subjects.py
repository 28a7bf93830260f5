"""What the bench measures: an export folder (+ the checkpoint it came from, for torch rows and parity), or a
random-initialised model of a preset exported to a temp folder (the weights do not change latency)."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hicmd.errors import HicmdError

__all__ = ["BenchError", "Subject", "random_subject", "export_subject", "NUM_CLASSES"]

NUM_CLASSES = 206  # RegDB's training identities; the classifier is not on the embedding path


class BenchError(HicmdError, ValueError):
    """Nothing measurable was given (no clip in a folder, a checkpoint that does not match the export, ...)."""


@dataclass
class Subject:
    """One config to measure: its torch model (random or trained, may be None), its export folder's manifest,
    and the MACs per image of the embedder (hicmd.model.summary's counting)."""

    cfg: Any  # hicmd.config.Config
    manifest: Any  # hicmd.runtime.manifest.Manifest
    model: Any  # HiCMD in eval mode, or None when no checkpoint is at hand
    macs: int | None  # None: unknown (an old export read without torch): no GFLOP/s columns
    weights: str  # "random" or the checkpoint path
    notes: list[str] = field(default_factory=list)


def _macs(model: Any) -> int:
    """MACs per image of the exported embedder graph (Conv2d + Linear, hicmd.model.summary's counting); equal to
    summarise()'s "inference path" row, without building and running the decoder and discriminators."""
    import torch

    from hicmd.export.graphs import EmbedderGraph
    from hicmd.model.summary import count_macs

    cfg = model.cfg
    return count_macs(EmbedderGraph(model, "rgb").eval(), torch.zeros(1, cfg.height, cfg.width, 3, dtype=torch.uint8))


def random_subject(cfg: Any, folder: Path, fp16: bool = True, int8: bool = False) -> Subject:
    """A random-initialised HiCMD of `cfg`, its RGB embedder exported to `folder` (ONNX FP32, FP16, INT8
    calibrated on random crops: latency does not depend on the ranges) with the export package's graph API, and a
    manifest for the runtime backends."""
    from hicmd.config import config_to_dict
    from hicmd.export.fp16 import convert_fp16, fp32_scopes
    from hicmd.export.graphs import EMBEDDER_INPUT, EmbedderGraph, export_embedder
    from hicmd.model import HiCMD
    from hicmd.runtime.manifest import Artifact, InputSpec, Manifest, TensorSpec, sha256_file

    m = cfg.model
    folder.mkdir(parents=True, exist_ok=True)
    model = HiCMD(m, NUM_CLASSES).eval()
    files = {"fp32": folder / "rgb.onnx"}
    export_embedder(model, "rgb", files["fp32"])
    if fp16:
        files["fp16"] = folder / "rgb.fp16.onnx"
        convert_fp16(files["fp32"], files["fp16"], fp32_scopes(EmbedderGraph(model, "rgb")))
    if int8:
        from hicmd.export.int8 import quantize_embedder

        files["int8"] = folder / "rgb.int8.onnx"
        crops = np.random.default_rng(0).integers(0, 256, (16, m.height, m.width, 3), dtype=np.uint8)
        # all-INT8 (no measured mixed precision: random weights would make it keep a random few convolutions
        # float); an export's graph may keep some float, listed in its manifest
        quantize_embedder(files["fp32"], files["int8"], crops, "max", mixed=False)
    inputs = (TensorSpec(EMBEDDER_INPUT, (-1, m.height, m.width, 3), "uint8"),)
    outputs = (TensorSpec("embedding", (-1, m.embedding_dim), "float32"),
               TensorSpec("prototype", (-1, *m.prototype_shape), "float32"),
               TensorSpec("attribute", (-1, m.attribute_dim), "float32"))
    artifacts = tuple(Artifact("rgb" + ("" if p == "fp32" else f".{p}"), "embedder", "rgb", p, "onnx", f.name,
                               sha256_file(f), inputs, outputs) for p, f in files.items())
    if int8:
        artifacts += _openvino_int8(folder, crops, inputs, outputs)
    manifest = Manifest(
        config_name=cfg.name, config=config_to_dict(cfg), checkpoint={},
        input=InputSpec(EMBEDDER_INPUT, "NHWC", "uint8", "RGB", m.height, m.width, m.mean, m.std),
        embedding_dim=m.embedding_dim, attribute_dim=m.attribute_dim, prototype_shape=m.prototype_shape,
        attribute_layout={}, opset=17, artifacts=artifacts, root=folder, macs_per_image=_macs(model))
    manifest.save(folder)
    return Subject(cfg, manifest, model, manifest.macs_per_image, "random",
                   ["random-initialised weights: the weights do not change latency"])


def _openvino_int8(folder: Path, crops: np.ndarray, inputs: tuple, outputs: tuple) -> tuple:
    """OpenVINO's own INT8 IR of the RGB embedder (NNCF, the same crops) when nncf is installed, as export writes
    it (hicmd.export.int8_openvino): the bench's `openvino int8 nncf` row."""
    from hicmd.export.int8_openvino import NNCF, nncf_problem, quantize_openvino
    from hicmd.runtime.manifest import Artifact, sha256_file

    if nncf_problem():
        return ()
    xml, weights = folder / f"rgb.{NNCF}.xml", folder / f"rgb.{NNCF}.bin"
    quantize_openvino(folder / "rgb.onnx", xml, crops)
    return (Artifact(f"rgb.{NNCF}", "embedder", "rgb", "int8", "openvino", xml.name, sha256_file(xml), inputs,
                     outputs, weights={"file": weights.name, "sha256": sha256_file(weights)}),)


def export_subject(folder: Path, checkpoint: Path | None) -> Subject:
    """An export folder (manifest.json) plus, for the torch rows and parity, its training checkpoint: `checkpoint`,
    or the one the manifest names if it still exists."""
    from hicmd.config import config_from_dict
    from hicmd.runtime.manifest import load_manifest

    manifest = load_manifest(folder)
    cfg = config_from_dict(manifest.config)
    if checkpoint is None and manifest.checkpoint.get("file"):
        named = Path(manifest.checkpoint["file"])
        for candidate in (folder / named, named):
            if candidate.is_file():
                checkpoint = candidate
                break
    notes = []
    model = None
    has_torch = importlib.util.find_spec("torch") is not None
    if not has_torch:
        notes.append("torch is not installed: torch rows are skipped and parity is against ONNX Runtime FP32")
    elif checkpoint is not None:
        from hicmd.checkpoint import load_model

        model, ckpt_cfg = load_model(checkpoint)
        if ckpt_cfg.model != cfg.model:
            raise BenchError(f"{checkpoint} holds a different model config than {folder}/manifest.json; "
                            f"pass the checkpoint the folder was exported from")
    else:
        notes.append("no checkpoint found: torch rows are skipped, parity is against ONNX Runtime FP32 (pass "
                     "--checkpoint)")
    macs = manifest.macs_per_image or None
    if macs is None and has_torch:
        from hicmd.model import HiCMD

        macs = _macs(model if model is not None else HiCMD(cfg.model, NUM_CLASSES).eval())
    elif macs is None:
        notes.append("manifest.json records no MACs per image (an older export) and torch is not here to count "
                     "them: no GFLOP/s or % peak columns")
    return Subject(cfg, manifest, model, macs, str(checkpoint) if checkpoint else "exported", notes)


