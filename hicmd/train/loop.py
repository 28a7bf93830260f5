"""`train(cfg, dataset, out_dir)`: the training loop around `Trainer`, with logs, sample grids, checkpoints,
bit-exact resume, non-finite guards and optional multi-process training (torchrun).

Output folder: config.json, log.csv, results.png (its curves), samples/iter_XXXXXXX.png, checkpoints/iter_XXXXXXX.pt, last.pt
(a hard link to the newest iteration file), eval.json when evaluated at the end.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from hicmd.config import Config, config_to_dict
from hicmd.data import load_train, parse_dataset_spec
from hicmd.errors import HicmdError
from hicmd.model import HiCMD, load_imagenet_weights
from hicmd.pretrained import load_packaged
from hicmd.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from hicmd.train.housekeeping import (
    finite_weights,
    keep_best,
    link_atomically,
    prune_checkpoints,
    remove_stale_temp_files,
    truncate_log,
)
from hicmd.train.logs import CsvLog, TensorBoard, make_progress
from hicmd.train.sampler import PairSampler, schedule_note
from hicmd.train.state import (
    RECOVERY_FIELDS,
    resume_mismatch,
    rng_state,
    seed_everything,
    set_rng_state,
    weights_digest,
)
from hicmd.device import resolve_device
from hicmd.train.trainer import Trainer
from hicmd.train.visual import save_grid

__all__ = ["train", "TrainingStopped"]

log = logging.getLogger(__name__)


class TrainingStopped(HicmdError, RuntimeError):
    """Too many non-finite steps in a row; the message names the last good checkpoint."""


def _init_distributed(device_spec: str) -> tuple[int, int, torch.device, bool]:
    """(rank, world size, device, whether we started the process group). torchrun sets WORLD_SIZE/RANK."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = resolve_device(device_spec)
    if world <= 1:
        return 0, 1, device, False
    started = not dist.is_initialized()
    if started:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    return dist.get_rank(), dist.get_world_size(), device, started


def _gather(obj: Any, world: int) -> list[Any]:
    if world == 1:
        return [obj]
    out: list[Any] = [None] * world
    dist.all_gather_object(out, obj)
    return out


def _save(out: Path, iteration: int, cfg: Config, model: HiCMD, trainer: Trainer, sampler: PairSampler,
          dataset: str, original_ids: list[int], rank: int, world: int) -> Path | None:
    """Every rank contributes its RNG and sampler state; rank 0 writes checkpoints/iter_X.pt and links last.pt."""
    per_rank = _gather({"rng": rng_state(), "sampler": sampler.state_dict()}, world)
    if rank != 0:
        return None
    path = save_checkpoint(out / "checkpoints" / f"iter_{iteration:07d}.pt", {
        "config": config_to_dict(cfg), "num_classes": model.num_classes, "model": model.state_dict(),
        "iteration": iteration, "trainer": trainer.state_dict(), "ranks": per_rank, "world_size": world,
        "dataset": dataset, "original_ids": original_ids,
    })
    link_atomically(path, out / "last.pt")
    prune_checkpoints(out / "checkpoints", cfg.train.keep_checkpoints)
    return path


def train(
    cfg: Config,
    dataset: str,
    out_dir: str | Path,
    iters: int | None = None,
    resume: str | Path | None = None,
    pretrained: str | Path | None = None,
    evaluate: bool = False,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Train Hi-CMD on `dataset` ("regdb:PATH[:trial]" | "sysu:PATH" | "llcm:PATH") into `out_dir`.

    Returns a summary: iterations, seconds, it/s, skipped (non-finite) steps, corrupt images, last checkpoint and,
    when `evaluate`, the evaluation results. Raises CheckpointError for a resume checkpoint made for another
    config, TrainingStopped after `max_nonfinite` non-finite iterations in a row, DataError for unusable data.
    """
    t = cfg.train
    iters = t.iters if iters is None else iters
    out = Path(out_dir)
    rank, world, device, started = _init_distributed(t.device)
    try:
        kind, root, trial = parse_dataset_spec(dataset)
        records, original_ids = load_train(kind, root, trial)
        state = None
        if resume is not None:
            state = load_checkpoint(resume)
            diffs = resume_mismatch(state["config"], cfg)
            if diffs:
                raise CheckpointError(f"{resume} was trained with another config: " + "; ".join(diffs) +
                                      f" (on resume only {', '.join(sorted(RECOVERY_FIELDS))} and logging/length "
                                      "settings may change)")
            if int(state["num_classes"]) != len(original_ids):
                raise CheckpointError(f"{resume} has {state['num_classes']} classes but {dataset} has "
                                      f"{len(original_ids)} training identities: is it the same dataset?")

        seed_everything(t.seed)  # identical initial weights on every rank
        model = HiCMD(cfg.model, len(original_ids))
        if pretrained is None and state is None and cfg.model.pretrained != "none":
            load_packaged(model, cfg.model.pretrained)  # weights inside an installed package, sha256-checked
        elif pretrained is not None and state is None:
            try:
                for module in (model.attribute["rgb"], model.attribute["ir"], model.hfl.h):
                    load_imagenet_weights(module, pretrained)
            except (OSError, KeyError, ValueError) as exc:
                raise CheckpointError(f"pretrained weights {pretrained}: {exc}") from None
        trainer = Trainer(model, cfg, device)
        sampler = PairSampler(records, cfg, seed=t.seed + 1000 * rank)
        if rank == 0 and t.sampling == "image":
            log.info(schedule_note(kind, len(sampler.images), iters, t.step_size))
        seed_everything(t.seed + rank)  # dropout and erasing streams differ between ranks
        start = 0
        if state is not None:
            model.load_state_dict(state["model"])
            trainer.load_state_dict(state["trainer"])
            changed = trainer.apply_learning_rates(state["config"]["train"])
            if changed and rank == 0:  # the recovery from a non-finite stop: a deliberate, logged change
                log.warning("resuming with changed %s: this run is no longer a bit-exact continuation",
                            ", ".join(changed))
            start = int(state["iteration"])
            mine = state["ranks"][rank] if rank < len(state["ranks"]) else None
            if mine is not None and int(state["world_size"]) == world:
                set_rng_state(mine["rng"])
                sampler.load_state_dict(mine["sampler"])
            elif rank == 0:
                log.warning("resuming with %d processes instead of %d: batches will differ from the original run",
                            world, state["world_size"])
        elif world > 1:
            for tensor in model.state_dict().values():
                dist.broadcast(tensor, 0)
        if start >= iters:
            raise CheckpointError(f"{resume} is already at iteration {start}; ask for more with --iters N (> {start})")

        if rank == 0:
            out.mkdir(parents=True, exist_ok=True)
            for stale in remove_stale_temp_files(out):
                log.info("removed %s, left by a save that never finished", stale.name)
            if state is not None:
                truncate_log(out / "log.csv", start)
            (out / "config.json").write_text(json.dumps(config_to_dict(cfg), indent=1) + "\n")
        csv_log = CsvLog(out / "log.csv") if rank == 0 else None
        board = TensorBoard(out / "tensorboard") if rank == 0 else None
        if board is not None:
            log.info(board.note)
        last_path = Path(resume) if resume is not None else None
        begin, done = time.perf_counter(), 0
        with make_progress(disable=not show_progress or rank != 0) as progress:
            task = progress.add_task("train", total=iters, completed=start, status="")
            for it in range(start + 1, iters + 1):
                batch = sampler.next().to(device, trainer.memory_format)
                if it <= t.warmup_id:
                    terms = trainer.id_update(batch)
                    if t.warmup_shared and (it in (t.warmup_id, iters) or it % t.save_every == 0
                                            or it % t.sample_every == 0):
                        trainer.copy_rgb_encoders_to_ir()  # checkpoints and samples always hold usable IR encoders
                else:
                    terms = {**trainer.dis_update(batch), **trainer.gen_update(batch)}
                done += 1
                if trainer.consecutive >= t.max_nonfinite:
                    raise TrainingStopped(
                        f"stopped at iteration {it}: {trainer.consecutive} non-finite losses in a row "
                        f"(train.max_nonfinite={t.max_nonfinite}); last good checkpoint: {last_path or 'none'}. "
                        f"Resume from it with lower learning rates or without mixed precision, e.g. "
                        f"--resume {last_path or 'CHECKPOINT'} --set train.lr_id={t.lr_id / 10:g} "
                        f"--set train.lr_gen={t.lr_gen / 10:g} --set train.amp=none")
                if terms["D_skipped"] or terms["G_skipped"]:
                    log.warning("iteration %d: non-finite loss, step skipped (%d in a row)", it, trainer.consecutive)
                if rank == 0 and (it % t.log_every == 0 or it == iters):
                    row = {"iteration": it, "time": round(time.perf_counter() - begin, 3), **terms,
                           "skipped": trainer.skipped, "corrupt": sampler.corrupt}
                    csv_log.write(row)
                    board.write(it, row)
                progress.update(task, advance=1, status=f"G {terms['TOT_G']:.1f} D {terms['TOT_D']:.2f} "
                                                         f"CE {terms['CE']:.3f} alpha {terms['alpha']:.3f}")
                if rank == 0 and (it % t.sample_every == 0 or it == iters):
                    save_grid(out / "samples" / f"iter_{it:07d}.png", trainer.translate(batch.x_a, batch.x_b),
                              cfg.model.mean, cfg.model.std)
                # only after a good step, and never weights that already went non-finite
                if (it % t.save_every == 0 or it == iters) and trainer.consecutive == 0 and finite_weights(model):
                    saved = _save(out, it, cfg, model, trainer, sampler, dataset, original_ids, rank, world)
                    last_path = saved or last_path
        seconds = time.perf_counter() - begin
        summary: dict[str, Any] = {
            "iterations": iters, "trained": done, "seconds": round(seconds, 2),
            "it_per_s": round(done / seconds, 4) if seconds else None, "skipped": trainer.skipped,
            "corrupt": sampler.corrupt, "checkpoint": str(out / "last.pt"), "world_size": world, "rank": rank,
            "weights_sha1": weights_digest(model),
        }
        if board is not None:
            board.close()
        if rank == 0:
            summary["results_png"] = _plot(out)
        if evaluate and rank == 0:
            summary["eval"] = _evaluate(model, cfg, dataset, device, out, show_progress)
        return summary
    finally:
        if started:
            dist.destroy_process_group()


def _plot(out: Path) -> str | None:
    """results.png from log.csv; a missing matplotlib only costs the picture."""
    try:
        from hicmd.train.curves import plot_results
    except ImportError as exc:
        log.warning("results.png skipped: %s", exc)
        return None
    try:
        written = plot_results(out / "log.csv", out / "results.png")
    except ImportError as exc:
        log.warning("results.png skipped: %s (pip install 'hicmd[train]')", exc)
        return None
    return str(written) if written else None


def _evaluate(model: HiCMD, cfg: Config, dataset: str, device: torch.device, out: Path,
              show_progress: bool) -> dict[str, Any] | None:
    try:
        from hicmd.evaluation import evaluate
        from hicmd.evaluation.report import write_json
    except ImportError as exc:
        log.warning("evaluation skipped: %s", exc)
        return None
    results = evaluate(model.eval(), cfg, dataset, device=str(device), show_progress=show_progress)
    write_json(results, out / "eval.json")
    if (out / "last.pt").is_file():
        keep_best(out, results)
    return results
