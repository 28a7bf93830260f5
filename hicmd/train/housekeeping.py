"""The run folder stays tidy and truthful across crashes and resumes.

- A write killed midway leaves a hidden `.<file>.<random>.tmp` beside its file (runtime/atomic.py; a checkpoint's
  is 10-100 MB): removed when the next run starts.
- A resumed run continues log.csv from its checkpoint's iteration: rows logged after that checkpoint (by the run
  that crashed) are dropped, so every iteration appears once, and so is a last row the crash cut short.
- Periodic checkpoints are pruned to the newest `keep` (last.pt and best.pt are separate links and stay).
- A checkpoint is never written with non-finite weights: "the last good checkpoint" must be one.
- When a run is evaluated, best.pt links the best-scoring checkpoint so far (best.json says which and its score);
  pruning never touches it.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import torch

from hicmd.runtime.atomic import write_atomically

__all__ = ["remove_stale_temp_files", "truncate_log", "prune_checkpoints", "finite_weights", "link_atomically",
           "headline_rank1", "keep_best"]


def remove_stale_temp_files(out: Path) -> list[Path]:
    """Delete temp files of saves that never finished (only one trainer writes a run folder at a time)."""
    stale = [*out.glob("checkpoints/.*.tmp"), *out.glob(".*.tmp")]  # runtime/atomic.py's and link_atomically's
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def truncate_log(path: Path, iteration: int) -> int:
    """Keep the header and the complete rows up to `iteration`; returns how many rows were dropped. Atomic.
    A row cut short by a kill or a full disk is dropped too (its iteration may be cut as well: "12" of "1200"), and
    the file is rewritten so that the next row starts on a line of its own."""
    if not path.is_file():
        return 0
    text = path.read_text()
    rows = list(csv.reader(io.StringIO(text, newline="")))
    if not rows or "iteration" not in rows[0]:
        return 0
    col, width, ended = rows[0].index("iteration"), len(rows[0]), text.endswith("\n")
    complete = rows[1:] if ended else rows[1:-1]
    kept = [rows[0]] + [r for r in complete if len(r) == width and r[col].isdigit() and int(r[col]) <= iteration]
    dropped = len(rows) - len(kept)
    if dropped or not ended:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(kept)
        write_atomically(path, buffer.getvalue())
    return dropped


def prune_checkpoints(folder: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` iter_*.pt files (keep == 0: keep everything)."""
    files = sorted(folder.glob("iter_*.pt"))
    doomed = files[:-keep] if keep > 0 else []
    for path in doomed:
        path.unlink(missing_ok=True)
    return doomed


def finite_weights(model: torch.nn.Module) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in model.state_dict().values() if t.is_floating_point())


def link_atomically(source: Path, target: Path) -> None:
    """`target` becomes a hard link to (or, where links are not supported, a copy of) `source`, atomically."""
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:
        import shutil

        shutil.copyfile(source, tmp)
    os.replace(tmp, target)


def headline_rank1(results: dict) -> float:
    """The first setting's rank-1 of an evaluation (RegDB visible -> thermal, SYSU all-search), in percent."""
    return float(next(iter(results["settings"].values()))["r1"])


def keep_best(out: Path, results: dict) -> bool:
    """Point best.pt at last.pt when this evaluation beats the best one recorded in best.json; True if it did."""
    score, record = headline_rank1(results), out / "best.json"
    best = json.loads(record.read_text()) if record.is_file() else None
    if best is not None and best["r1"] >= score:
        return False
    link_atomically(out / "last.pt", out / "best.pt")
    write_atomically(record, json.dumps({"r1": score, "checkpoint": os.path.realpath(out / "last.pt"),
                                         "setting": next(iter(results["settings"]))}) + "\n")
    return True
