"""`train(cfg, dataset, out_dir)`: the training loop around `Trainer`. Opening a run (process group, resume or
fresh start, pretrained weights, output folder) is in run.py; logs, sample grids, checkpoints and the end-of-run
evaluation are hooks (hooks.py); what stays here is the loop itself, one iteration and its non-finite guard.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from hicmd.config import Config
from hicmd.errors import HicmdError
from hicmd.train.hooks import Hook, LogHook, SampleHook, SaveHook, Step, evaluate_run, plot_curves
from hicmd.train.logs import make_progress
from hicmd.train.run import Run, open_run, process_group
from hicmd.train.state import weights_digest

__all__ = ["train", "TrainSummary", "TrainingStopped"]

log = logging.getLogger(__name__)


class TrainingStopped(HicmdError, RuntimeError):
    """Too many non-finite steps in a row; the message names the last good checkpoint."""


@dataclass(frozen=True)
class TrainSummary:
    """What a finished `train` call reports (each process reports its own; rank 0 also plots and evaluates)."""

    iterations: int  # the run's length; a resumed run trained only the iterations after its checkpoint
    trained: int  # iterations this call ran
    seconds: float
    it_per_s: float | None
    skipped: int  # non-finite steps skipped over the whole run
    corrupt: int  # unreadable training images
    checkpoint: Path  # last.pt
    checkpoint_iteration: int | None  # the iteration last.pt holds: before `iterations` when the last steps failed
    world_size: int
    rank: int
    weights_sha1: str  # equal on every rank: the replicas stayed identical
    results_png: Path | None = None
    eval: dict[str, Any] | None = None  # the evaluation results, when asked for


def train(
    cfg: Config,
    dataset: str,
    out_dir: str | Path,
    iters: int | None = None,
    resume: str | Path | None = None,
    pretrained: str | Path | None = None,
    evaluate: bool = False,
    show_progress: bool = True,
) -> TrainSummary:
    """Train Hi-CMD on `dataset` ("regdb:PATH[:trial]" | "sysu:PATH" | "llcm:PATH") into `out_dir`.

    Raises CheckpointError for a resume checkpoint made for another config, TrainingStopped after
    `max_nonfinite` non-finite iterations in a row, DataError for unusable data.
    """
    iters = cfg.train.iters if iters is None else iters
    with process_group(cfg.train.device) as proc:
        run = open_run(cfg, dataset, Path(out_dir), iters, resume, pretrained, proc)
        saver = SaveHook(run)  # on every rank: each contributes its RNG and sampler state
        hooks: list[Hook] = [LogHook(run), SampleHook(run), saver] if run.main else [saver]
        begin = time.perf_counter()
        with make_progress(disable=not show_progress or not run.main) as progress:
            bar = progress.add_task("train", total=iters, completed=run.start, status="")
            for it in range(run.start + 1, iters + 1):
                step = _iteration(run, it, last_good=saver.last)
                for hook in hooks:
                    hook.after_step(step)
                progress.update(bar, advance=1, status=_status(step.terms))
        seconds = time.perf_counter() - begin
        trained = iters - run.start
        summary = TrainSummary(
            iterations=iters, trained=trained, seconds=round(seconds, 2),
            it_per_s=round(trained / seconds, 4) if seconds else None, skipped=run.trainer.skipped,
            corrupt=run.sampler.corrupt, checkpoint=run.out / "last.pt", checkpoint_iteration=saver.iteration,
            world_size=proc.world, rank=proc.rank,
            weights_sha1=weights_digest(run.model),
        )
        for hook in hooks:
            hook.after_train()
        if not run.main:
            return summary
        return replace(summary, results_png=plot_curves(run.out),
                       eval=evaluate_run(run, show_progress) if evaluate else None)


def _iteration(run: Run, it: int, last_good: Path | None) -> Step:
    """The next batch, then the ID warm-up update or the D and G updates; stops the run when too many
    iterations in a row were non-finite (`last_good` is the checkpoint to resume from)."""
    t, trainer = run.cfg.train, run.trainer
    batch = run.sampler.next().to(run.proc.device, trainer.memory_format)
    if it <= t.warmup_id:
        terms = trainer.id_update(batch)
        if t.warmup_shared and (it in (t.warmup_id, run.iters) or it % t.save_every == 0
                                or it % t.sample_every == 0):
            trainer.copy_rgb_encoders_to_ir()  # checkpoints and samples always hold usable IR encoders
    else:
        terms = {**trainer.dis_update(batch), **trainer.gen_update(batch)}
    if trainer.consecutive >= t.max_nonfinite:
        raise TrainingStopped(
            f"stopped at iteration {it}: {trainer.consecutive} non-finite losses in a row "
            f"(train.max_nonfinite={t.max_nonfinite}); last good checkpoint: {last_good or 'none'}. "
            f"Resume from it with lower learning rates or without mixed precision, e.g. "
            f"--resume {last_good or 'CHECKPOINT'} --set train.lr_id={t.lr_id / 10:g} "
            f"--set train.lr_gen={t.lr_gen / 10:g} --set train.amp=none")
    if terms["D_skipped"] or terms["G_skipped"]:
        log.warning("iteration %d: non-finite loss, step skipped (%d in a row)", it, trainer.consecutive)
    return Step(it, batch, terms, last=it == run.iters)


def _status(terms: dict[str, float]) -> str:
    return f"G {terms['TOT_G']:.1f} D {terms['TOT_D']:.2f} CE {terms['CE']:.3f} alpha {terms['alpha']:.3f}"
