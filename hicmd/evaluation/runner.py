"""`evaluate(model, cfg, dataset)`: the whole protocol in one call, for the CLI, the trainer and the demo.

Every image any trial needs is embedded once (SYSU queries are shared by all trials, galleries overlap), then
each trial is scored from those features and the trials of a setting are averaged.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from hicmd.errors import HicmdError
from hicmd.evaluation.metrics import mean_metrics
from hicmd.evaluation.protocols import DIRECTIONS, SYSU_MODES, build_trials, load_permutations, score, setting_label

if TYPE_CHECKING:
    import torch

    from hicmd.config import Config

__all__ = ["evaluate", "default_trials", "parse_trials", "ProtocolError"]


class ProtocolError(HicmdError, ValueError):
    """An evaluation that the dataset's protocol does not define (a direction, mode, shot count or trial it
    lacks), or split / permutation files that cannot be read."""


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
        raise ProtocolError(f"trials {text!r}: give a trial number, a range like 1-10 or a list like 1,3,5")
    if min(trials) < 1:
        raise ProtocolError(f"trials {text!r}: trials are numbered from 1")
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
    Returns the results dict of hicmd.evaluation.report (values in percent). Raises ProtocolError (or DataError) for
    a dataset, permutation file or option that cannot be used.
    """
    from hicmd.data import parse_dataset_spec

    kind, root, spec_trial = parse_dataset_spec(dataset)
    trials = list(trials) if trials else default_trials(kind, spec_trial)
    if kind == "sysu":
        if directions and set(directions) != {"t2v"}:
            raise ProtocolError("SYSU-MM01 queries are IR images only: its one direction is t2v")
        directions = ("t2v",)
        bad_modes = [m for m in modes if m not in SYSU_MODES]
        if bad_modes:
            raise ProtocolError(f"SYSU-MM01 search mode {bad_modes[0]!r}: the modes are 'all' and 'indoor'")
        if shots not in (1, 10):
            raise ProtocolError(f"{shots} shots: SYSU-MM01 galleries are single-shot (1) or multi-shot (10)")
    elif shots != 1 or perm is not None:
        raise ProtocolError("shots and permutation files belong to the SYSU-MM01 protocol only")
    elif set(modes) != {"all"}:  # RegDB and LLCM have one gallery: an indoor search would silently be the same
        raise ProtocolError("search modes (indoor, both) belong to the SYSU-MM01 protocol only")
    directions = tuple(directions or DIRECTIONS)
    if any(d not in DIRECTIONS for d in directions):
        raise ProtocolError(f"direction must be v2t or t2v, got {', '.join(directions)}")

    try:
        permutations = load_permutations(perm) if perm is not None else None
        if permutations is not None and max(trials) > permutations.num_trials:
            n = permutations.num_trials
            raise ProtocolError(f"{perm} holds {n} trials; evaluate trials 1-{n}")
        if shots != 1 and permutations is None:
            raise ProtocolError("multi-shot SYSU-MM01 needs the official permutations (rand_perm_cam.mat)")
        all_trials = build_trials(kind, root, trials, directions, tuple(modes), shots, permutations)
    except ProtocolError:
        raise
    except ValueError as exc:  # unreadable split or permutation files (DataError is already a HicmdError)
        if isinstance(exc, HicmdError):
            raise
        raise ProtocolError(str(exc)) from None

    # embed every distinct image once
    records = list(dict.fromkeys(r for t in all_trials for r in (*t.query, *t.gallery)))
    row = {r: i for i, r in enumerate(records)}
    from hicmd.evaluation.extract import extract_features

    start = time.perf_counter()
    features = extract_features(model, records, cfg.model, batch_size, flip, device,
                                f"embedding {len(records)} images", show_progress)
    extract_seconds = time.perf_counter() - start

    per_setting: dict[str, list] = {}
    for t in all_trials:
        q = features[[row[r] for r in t.query]]
        g = features[[row[r] for r in t.gallery]]
        try:
            per_setting.setdefault(t.setting, []).append((t.trial, score(t, q, g)))
        except ValueError as exc:
            raise ProtocolError(f"{kind} trial {t.trial} ({t.setting}): {exc}") from None

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
