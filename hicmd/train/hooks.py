"""What happens around the iterations, fast-reid style: small hook objects the loop calls after every iteration
(each acting at its own period and at the last iteration) and once after the last, plus the end-of-run curves and
evaluation.

Run folder: config.json, log.csv, results.png (its curves), samples/iter_XXXXXXX.png,
checkpoints/iter_XXXXXXX.pt, last.pt (a hard link to the newest iteration file), eval.json and best.pt when
evaluated at the end.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch.distributed as dist

from hicmd.config import config_to_dict
from hicmd.checkpoint import save_checkpoint
from hicmd.train.housekeeping import finite_weights, keep_best, link_atomically, prune_checkpoints
from hicmd.train.logs import CsvLog, TensorBoard
from hicmd.train.run import Run
from hicmd.train.sampler import Batch
from hicmd.train.state import rng_state
from hicmd.train.visual import save_grid

__all__ = ["Step", "Hook", "LogHook", "SampleHook", "SaveHook", "plot_curves", "evaluate_run"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Step:
    """One finished iteration, as the hooks see it."""

    iteration: int
    batch: Batch
    terms: dict[str, float]  # every loss term, learning rate and alpha of the iteration
    last: bool  # the run's final iteration, where every hook acts

    def due(self, every: int) -> bool:
        return self.iteration % every == 0 or self.last


class Hook(Protocol):
    def after_step(self, step: Step) -> None: ...

    def after_train(self) -> None: ...


class LogHook:
    """Rank 0: a log.csv row, mirrored to TensorBoard, every `train.log_every` iterations."""

    def __init__(self, run: Run):
        self.run, self.csv = run, CsvLog(run.out / "log.csv")
        self.board = TensorBoard(run.out / "tensorboard")
        log.info(self.board.note)
        self.begin, self.cpu_begin = time.perf_counter(), time.process_time()

    def after_step(self, step: Step) -> None:
        if step.due(self.run.cfg.train.log_every):
            # cpu_time: this process's CPU seconds, all threads; unlike wall time it does not grow when other
            # processes take the cores (benchmarks/edge_vs_tiny.py budgets training by it)
            row = {"iteration": step.iteration, "time": round(time.perf_counter() - self.begin, 3),
                   "cpu_time": round(time.process_time() - self.cpu_begin, 3), **step.terms,
                   "skipped": self.run.trainer.skipped, "corrupt": self.run.sampler.corrupt}
            self.csv.write(row)
            self.board.write(step.iteration, row)

    def after_train(self) -> None:
        self.board.close()


class SampleHook:
    """Rank 0: a grid of the batch's translations, samples/iter_X.png, every `train.sample_every` iterations."""

    def __init__(self, run: Run):
        self.run = run

    def after_step(self, step: Step) -> None:
        run = self.run
        if step.due(run.cfg.train.sample_every):
            save_grid(run.out / "samples" / f"iter_{step.iteration:07d}.png",
                      run.trainer.translate(step.batch.x_a, step.batch.x_b), run.cfg.model.mean, run.cfg.model.std)

    def after_train(self) -> None:
        pass


class SaveHook:
    """Every rank: checkpoints/iter_X.pt every `train.save_every` iterations, only after a good step and never with
    weights that already went non-finite. Each rank contributes its RNG and sampler state; rank 0 writes the file,
    links last.pt to it and prunes the older ones."""

    def __init__(self, run: Run):
        self.run = run
        self.last: Path | None = run.resumed_from  # the last good checkpoint, which a non-finite stop names
        self.iteration: int | None = run.start if run.resumed_from else None  # the one last.pt holds

    def after_step(self, step: Step) -> None:
        run = self.run
        if step.due(run.cfg.train.save_every) and run.trainer.consecutive == 0 and finite_weights(run.model):
            self.last, self.iteration = self._save(step.iteration) or self.last, step.iteration

    def after_train(self) -> None:
        pass

    def _save(self, iteration: int) -> Path | None:
        run = self.run
        per_rank = _gather({"rng": rng_state(), "sampler": run.sampler.state_dict()}, run.proc.world)
        if not run.main:
            return None
        path = save_checkpoint(run.out / "checkpoints" / f"iter_{iteration:07d}.pt", {
            "config": config_to_dict(run.cfg), "num_classes": run.model.num_classes, "model": run.model.state_dict(),
            "iteration": iteration, "trainer": run.trainer.state_dict(), "ranks": per_rank,
            "world_size": run.proc.world, "dataset": run.dataset, "original_ids": run.original_ids,
        })
        link_atomically(path, run.out / "last.pt")
        prune_checkpoints(run.out / "checkpoints", run.cfg.train.keep_checkpoints)
        return path


def _gather(obj: Any, world: int) -> list[Any]:
    """`obj` of every rank, in rank order."""
    if world == 1:
        return [obj]
    out: list[Any] = [None] * world
    dist.all_gather_object(out, obj)
    return out


def plot_curves(out: Path) -> Path | None:
    """results.png from log.csv; a missing matplotlib only costs the picture."""
    try:
        from hicmd.train.curves import plot_results
    except ImportError as exc:
        log.warning("results.png skipped: %s", exc)
        return None
    try:
        return plot_results(out / "log.csv", out / "results.png")
    except ImportError as exc:
        log.warning("results.png skipped: %s (pip install 'hicmd[train]')", exc)
        return None


def evaluate_run(run: Run, show_progress: bool) -> dict[str, Any] | None:
    """Evaluate the trained model on the test split into eval.json; best.pt follows the best-scoring checkpoint."""
    try:
        from hicmd.evaluation import evaluate
        from hicmd.evaluation.report import write_json
    except ImportError as exc:
        log.warning("evaluation skipped: %s", exc)
        return None
    results = evaluate(run.model.eval(), run.cfg, run.dataset, device=str(run.proc.device),
                       show_progress=show_progress)
    write_json(results, run.out / "eval.json")
    if (run.out / "last.pt").is_file():
        keep_best(run.out, results)
    return results
