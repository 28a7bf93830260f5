"""`evaluate(model, cfg, dataset)`: the whole protocol in one call, for the CLI, the trainer and the demo.

Every image any trial needs is embedded once (SYSU queries are shared by all trials, galleries overlap), then
each trial is scored from those features and the trials of a setting are averaged.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from typing import TYPE_CHECKING, Any, Sequence

from hicmd.errors import UserError
from hicmd.evaluation.metrics import mean_metrics
from hicmd.evaluation.protocols import DIRECTIONS, SYSU_MODES, build_trials, load_permutations, score, setting_label

if TYPE_CHECKING:
    import torch

    from hicmd.config import Config

__all__ = ["evaluate", "default_trials", "parse_trials"]


def default_trials(kind: str, spec_trial: int) -> list[int]:
    """RegDB: the split named in the spec (each split has its own trained model); SYSU/LLCM: gallery draws 1..10."""
    return [spec_trial] if kind == "regdb" else list(range(1, 11))


def parse_trials(text: str) -> list[int]:
    """'3' -> [3]; '1-10' -> [1..10]; '1,4,7' -> [1, 4, 7]. Trials are numbered from 1."""
    trials: list[int] = []
    try:
        for part in text.split(","):
            low, sep, high = part.strip().partition("-")
            trials += list(range(int(low), int(high) + 1)) if sep else [int(low)]
    except ValueError:
        trials = []
    if not trials:
        raise UserError(f"--trials {text!r} must be a trial number, a range like 1-10 or a list like 1,3,5")
    if min(trials) < 1:
        raise UserError(f"--trials {text!r}: trials are numbered from 1")
    return sorted(set(trials))


def _protocol(kind: str, perm: Path | None, shots: int) -> str:
    if kind == "regdb":
        return "RegDB split files, AGW eval_regdb"
    if kind == "llcm":
        return "LLCM seeded single-shot galleries (DEEN random.seed(t-1)), ID-deduplicated CMC"
    if perm is not None:
        return f"SYSU-MM01 official rand_perm_cam.mat, {shots}-shot"
    return "SYSU-MM01 AGW seeded single-shot galleries (random.seed(t-1))"


def evaluate(
    model: torch.nn.Module,
    cfg: Config,
    dataset: str,
    trials: Sequence[int] | None = None,
    directions: Sequence[str] | None = None,
    modes: Sequence[str] = ("all",),
    shots: int = 1,
    perm: str | Path | None = None,
    flip: bool = False,
    batch_size: int = 64,
    device: str = "cpu",
    show_progress: bool = True,
) -> dict[str, Any]:
    """Evaluate `model` on `dataset` ("regdb:PATH[:trial]", "sysu:PATH" or "llcm:PATH").

    directions: "v2t" (visible query) and/or "t2v"; default both for RegDB/LLCM; SYSU queries are IR only.
    modes / shots / perm: SYSU all|indoor search, 1 or 10 shots, optional official permutation file.
    Returns the results dict of hicmd.evaluation.report (values in percent). Raises UserError for a dataset,
    permutation file or option that cannot be used.
    """
    from hicmd.data import DataError, parse_dataset_spec

    try:
        kind, root, spec_trial = parse_dataset_spec(dataset)
    except DataError as exc:
        raise UserError(str(exc)) from None
    trials = list(trials) if trials else default_trials(kind, spec_trial)
    if kind == "sysu":
        if directions and set(directions) != {"t2v"}:
            raise UserError("SYSU-MM01 queries are IR images only: use --direction t2v (or leave it out)")
        directions = ("t2v",)
        bad_modes = [m for m in modes if m not in SYSU_MODES]
        if bad_modes:
            raise UserError(f"--mode {bad_modes[0]!r} must be 'all' or 'indoor'")
        if shots not in (1, 10):
            raise UserError(f"--shots {shots} must be 1 (single-shot) or 10 (multi-shot)")
    elif shots != 1 or perm is not None:
        raise UserError("--shots and --perm belong to the SYSU-MM01 protocol only")
    directions = tuple(directions or DIRECTIONS)
    if any(d not in DIRECTIONS for d in directions):
        raise UserError(f"direction must be v2t or t2v, got {', '.join(directions)}")

    try:
        permutations = load_permutations(perm) if perm is not None else None
        if permutations is not None and max(trials) > permutations.num_trials:
            n = permutations.num_trials
            raise UserError(f"{perm} holds {n} trials; ask for --trials 1-{n}")
        if shots != 1 and permutations is None:
            raise UserError("multi-shot SYSU (--shots 10) needs the official permutations: --perm rand_perm_cam.mat")
        all_trials = build_trials(kind, root, trials, directions, tuple(modes), shots, permutations)
    except (DataError, ValueError) as exc:  # unreadable folders, split files or permutation files
        raise UserError(str(exc)) from None

    # embed every distinct image once
    records = list(dict.fromkeys(r for t in all_trials for r in (*t.query, *t.gallery)))
    row = {r: i for i, r in enumerate(records)}
    from hicmd.evaluation.extract import extract_features

    start = time.perf_counter()
    try:
        features = extract_features(model, records, cfg.model, batch_size, flip, device,
                                    f"embedding {len(records)} images", show_progress)
    except DataError as exc:  # a missing or corrupt image named in a split file
        raise UserError(str(exc)) from None
    extract_seconds = time.perf_counter() - start

    per_setting: dict[str, list] = {}
    for t in all_trials:
        q = features[[row[r] for r in t.query]]
        g = features[[row[r] for r in t.gallery]]
        try:
            per_setting.setdefault(t.setting, []).append((t.trial, score(t, q, g)))
        except ValueError as exc:
            raise UserError(f"{kind} trial {t.trial} ({t.setting}): {exc}") from None

    settings = {}
    for name, results in per_setting.items():
        mean = mean_metrics([m for _, m in results])
        per_trial = [{"trial": trial, **{k: v for k, v in m.to_dict().items() if k != "cmc"}} for trial, m in results]
        # the spread over trials (population std, as over the 10 RegDB splits or SYSU galleries) beside the mean
        std = {k: float(np.std([row[k] for row in per_trial])) for k in ("r1", "r5", "r10", "r20", "mAP", "mINP")}
        settings[name] = {"label": setting_label(kind, name), "trials": [trial for trial, _ in results],
                          **mean.to_dict(), "std": std, "per_trial": per_trial}
    return {
        "dataset": kind,
        "root": str(root),
        "protocol": _protocol(kind, Path(perm) if perm else None, shots),
        "config": cfg.name,
        "flip": flip,
        "units": "percent",
        "num_images": len(records),
        "extract_seconds": round(extract_seconds, 3),
        "settings": settings,
    }
