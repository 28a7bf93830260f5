"""RegDB's 10-split protocol: one model per split, each evaluated on its own split, mean and std over the splits.

Papers report RegDB as the mean over 10 models, each trained on one of the 10 random train/test splits. Evaluating
one checkpoint on splits it was not trained for mixes its training people into the test set and inflates the
score; the checkpoint records the dataset it was trained on, so that case is caught and warned about.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

__all__ = ["trained_trial", "evaluate_splits"]

COLUMNS = ("r1", "r5", "r10", "r20", "mAP", "mINP")


def trained_trial(dataset: str | None) -> int | None:
    """The RegDB split a checkpoint was trained on, from its recorded dataset spec ("regdb:PATH:3" -> 3)."""
    if not dataset or not dataset.startswith("regdb:"):
        return None
    from hicmd.data import parse_dataset_spec

    return parse_dataset_spec(dataset)[2]


def evaluate_splits(checkpoints: Sequence[Path], data: str, trials: Sequence[int],
                    evaluate_one: Callable[[Path, int], dict[str, Any]],
                    warn: Callable[[str], None]) -> dict[str, Any]:
    """`evaluate_one(checkpoint, trial)` -> evaluate()'s results for that trial; returns the same layout with, per
    setting, one per_trial row per checkpoint and the mean and std over them."""
    from hicmd.checkpoint import load_checkpoint

    merged: dict[str, Any] | None = None
    for checkpoint, trial in zip(checkpoints, trials):
        trained = trained_trial(load_checkpoint(checkpoint).get("dataset"))
        if trained is not None and trained != trial:
            warn(f"{checkpoint} was trained on RegDB split {trained} but is evaluated on split {trial}: its training "
                 "people are in that test set, so the score is inflated")
        results = evaluate_one(checkpoint, trial)
        if merged is None:
            merged = {**results, "settings": {}, "checkpoints": []}
        merged["checkpoints"].append(str(checkpoint))
        for name, row in results["settings"].items():
            target = merged["settings"].setdefault(name, {"label": row["label"], "trials": [], "per_trial": [],
                                                          "_cmc": []})
            target["trials"].append(trial)
            target["per_trial"].append({"trial": trial, "checkpoint": str(checkpoint),
                                        **{k: v for k, v in row.items() if k in COLUMNS or k.startswith("num_")}})
            target["_cmc"].append(row["cmc"])
    assert merged is not None
    for row in merged["settings"].values():
        rows = row["per_trial"]
        row.update({k: float(np.mean([r[k] for r in rows])) for k in COLUMNS})
        row["std"] = {k: float(np.std([r[k] for r in rows])) for k in COLUMNS}
        row["cmc"] = np.mean(row.pop("_cmc"), axis=0).tolist()
        row["num_valid"] = int(round(np.mean([r["num_valid"] for r in rows])))
        row["num_query"] = int(round(np.mean([r["num_query"] for r in rows])))
    merged["protocol"] += f"; {len(checkpoints)} checkpoints, one per split"
    return merged
