"""Accuracy gates of a reduced-precision embedder against FP32, the ones that stop `hicmd export --int8`.

- (hicmd.export.parity, thresholds REDUCED["int8"]) cosine to FP32 on held-out crops (the parity crops: `--data`'s
  test split or SynthVI): mean >= 0.995 (the issue's target for every reduced-precision path), min >= 0.98; and
  rank-1 agreement with FP32: RGB queries against the IR gallery of those crops pick the same image as FP32 (or one
  FP32 scores as a tie) for >= 95 % of queries (INT8 moves near neighbours; FP16 must agree on all of them);
- here: under the dataset's own protocol, when the data has a test split: R1 and mAP of the INT8 graphs (and of
  every other reduced-precision path: OpenVINO's own INT8, OpenVINO BF16 / INT8) within `max_drop` points (1.0 by
  default) of the FP32 graphs' in every setting (RegDB both directions, SYSU all-search, LLCM).
Every number is recorded in manifest.json whether it passed or not. Torch-free: graphs run on ONNX Runtime (and
OpenVINO for its paths).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from hicmd.export.parity import Gate
from hicmd.modality import MODALITIES

__all__ = ["protocol_scores", "protocol_gates", "drop_gates", "onnx_graphs"]

Embed = Callable[[np.ndarray], np.ndarray]


def _features(records: list, graphs: dict[str, dict[str, Embed]], height: int, width: int,
              batch: int = 64) -> dict[str, np.ndarray]:
    """L2-normalised embeddings of `records` for each named set of graphs, each record through its modality's
    graph; every image is read once (as evaluation reads it) and fed to all the sets."""
    from hicmd.data.io import read_image

    out: dict[str, np.ndarray] = {}
    rows: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        rows.setdefault(r.modality, []).append(i)
    for modality, idx in rows.items():
        for start in range(0, len(idx), batch):
            chunk = idx[start:start + batch]
            images = np.stack([read_image(records[i].path, height, width) for i in chunk])
            for name, embed in graphs.items():
                feats = np.asarray(embed[modality](images), np.float32)
                if name not in out:
                    out[name] = np.zeros((len(records), feats.shape[1]), np.float32)
                out[name][chunk] = feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)
    return out


def protocol_scores(spec: str, graphs: dict[str, dict[str, Embed]], height: int, width: int) -> dict[str, Any]:
    """R1 and mAP (percent, mean over trials) per setting of the dataset's protocol for each named set of
    graphs ({"fp32": {"rgb": embed, "ir": embed}, "int8": ...}). Raises DataError for a dataset without a test
    split or with unreadable images."""
    from hicmd.data import parse_dataset_spec
    from hicmd.evaluation.metrics import mean_metrics
    from hicmd.evaluation.protocols import DIRECTIONS, build_trials, score
    from hicmd.evaluation.runner import default_trials

    kind, root, trial = parse_dataset_spec(spec)
    directions = ("t2v",) if kind == "sysu" else DIRECTIONS
    trials = build_trials(kind, root, default_trials(kind, trial), directions)
    records = list(dict.fromkeys(r for t in trials for r in (*t.query, *t.gallery)))
    row = {r: i for i, r in enumerate(records)}
    # distinct query images per setting: one whose rank-1 changes (in every trial it is in) moves the mean R1 by
    # 100 / queries points (SYSU's trials share their queries; RegDB's each have their own)
    queries = {t.setting: len({r for u in trials if u.setting == t.setting for r in u.query}) for t in trials}
    result: dict[str, Any] = {"dataset": kind, "images": len(records), "settings": {}, "queries": queries}
    features_of = _features(records, graphs, height, width)
    for name in graphs:
        features = features_of[name]
        per_setting: dict[str, list] = {}
        for t in trials:
            q, g = features[[row[r] for r in t.query]], features[[row[r] for r in t.gallery]]
            per_setting.setdefault(t.setting, []).append(score(t, q, g))
        for setting, metrics in per_setting.items():
            mean = mean_metrics(metrics).to_dict()  # percent
            result["settings"].setdefault(setting, {})[name] = {"r1": mean["r1"], "mAP": mean["mAP"]}
    return result


def onnx_graphs(folder: Path, precision: str, threads: int | None = None) -> dict[str, Embed]:
    """images -> embeddings of each modality's `precision` ONNX graph in `folder`, run by ONNX Runtime."""
    from hicmd.export.gates import onnx_embedder

    return {m: onnx_embedder(folder / (f"{m}.onnx" if precision == "fp32" else f"{m}.{precision}.onnx"), threads)
            for m in MODALITIES}


def protocol_gates(spec: str, graphs: dict[str, dict[str, Embed]], max_drop: float, height: int,
                   width: int) -> dict[str, tuple[list[Gate], dict[str, Any]]]:
    """R1 / mAP drop gates of every named set of graphs against `graphs["fp32"]`, all scored in one pass over the
    test split: {name: (gates, record)}, the record holding both sides' scores and the drops per setting."""
    return drop_gates(protocol_scores(spec, graphs, height, width), max_drop)


def drop_gates(scores: dict[str, Any], max_drop: float) -> dict[str, tuple[list[Gate], dict[str, Any]]]:
    """The drop gates of `protocol_scores`' result: each non-FP32 set's R1 and mAP at most `max_drop` points below
    FP32's in every setting."""
    out = {}
    scored = next(iter(scores["settings"].values()))  # {graph set name: its R1 / mAP}, the same sets in every setting
    for name in (n for n in scored if n != "fp32"):
        record: dict[str, Any] = {"dataset": scores["dataset"], "images": scores["images"], "settings": {},
                                  "max_drop": max_drop}
        gates = []
        for setting, by in scores["settings"].items():
            queries = scores["queries"][setting]
            mine = record["settings"][setting] = {"fp32": by["fp32"], name: by[name], "queries": queries,
                                                  "one_query": 100.0 / queries}
            for metric in ("r1", "mAP"):
                # rounded: the scores are means of per-trial percentages, whose float sums leave residues of
                # ~1e-15, and a drop of exactly the allowed points (one query of 100 at 1.0) must pass
                mine[f"{metric}_drop"] = drop = round(by["fp32"][metric] - by[name][metric], 9)
                gates.append(Gate(f"{name} {scores['dataset']} {setting}", f"{metric} drop (points)", drop,
                                  max_drop, "<="))
        record["gates"] = [{"artifact": g.artifact, "metric": g.metric, "value": g.value, "threshold": g.threshold,
                            "passed": g.passed} for g in gates]
        out[name] = (gates, record)
    return out
