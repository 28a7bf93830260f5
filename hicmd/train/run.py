"""Opening a training run, everything before its first iteration: the process group (torchrun), the data, the
model (fresh, from pretrained weights, or resumed bit-exactly from a checkpoint) and the output folder."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from hicmd.config import Config, config_to_dict
from hicmd.data import load_train, parse_dataset_spec
from hicmd.model import HiCMD, load_imagenet_weights
from hicmd.pretrained import load_packaged
from hicmd.checkpoint import CheckpointError, load_checkpoint
from hicmd.train.housekeeping import remove_stale_temp_files, truncate_log
from hicmd.train.sampler import PairSampler, schedule_note
from hicmd.train.state import RECOVERY_FIELDS, resume_mismatch, seed_everything, set_rng_state
from hicmd.device import resolve_device
from hicmd.runtime.atomic import write_atomically
from hicmd.train.trainer import Trainer

__all__ = ["Process", "Run", "process_group", "open_run"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Process:
    """This process's place in a multi-process run (rank 0 of 1 when alone)."""

    rank: int
    world: int
    device: torch.device


@dataclass(frozen=True)
class Run:
    """What the iterations need, ready to continue after iteration `start` (0 for a fresh run)."""

    cfg: Config
    dataset: str
    out: Path
    iters: int
    proc: Process
    original_ids: list[int]
    model: HiCMD
    trainer: Trainer
    sampler: PairSampler
    start: int
    resumed_from: Path | None

    @property
    def main(self) -> bool:
        """Only the rank-0 process writes the run folder."""
        return self.proc.rank == 0


@contextmanager
def process_group(device_spec: str) -> Iterator[Process]:
    """Join the process group torchrun describes (WORLD_SIZE, RANK, LOCAL_RANK); leave it at the end if we
    started it."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = resolve_device(device_spec)
    if world <= 1:
        yield Process(0, 1, device)
        return
    started = not dist.is_initialized()
    if started:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
        yield Process(dist.get_rank(), dist.get_world_size(), device)
    finally:
        if started:
            dist.destroy_process_group()


def open_run(cfg: Config, dataset: str, out: Path, iters: int, resume: str | Path | None,
             pretrained: str | Path | None, proc: Process) -> Run:
    """Read the data, build the model and its trainer, restore `resume` if given, and prepare `out` (rank 0)."""
    t = cfg.train
    kind, root, trial = parse_dataset_spec(dataset)
    records, original_ids = load_train(kind, root, trial)
    state = None if resume is None else _read_resume(Path(resume), cfg, dataset, len(original_ids))

    seed_everything(t.seed)  # identical initial weights on every rank
    model = HiCMD(cfg.model, len(original_ids))
    if state is None:  # a resume's weights come from its checkpoint
        _load_pretrained(model, cfg, pretrained)
    trainer = Trainer(model, cfg, proc.device)
    sampler = PairSampler(records, cfg, seed=t.seed + 1000 * proc.rank)
    if proc.rank == 0 and t.sampling == "image":
        log.info(schedule_note(kind, len(sampler.images), iters, t.step_size))
    seed_everything(t.seed + proc.rank)  # dropout and erasing streams differ between ranks
    start = 0
    if state is not None:
        start = _restore(state, trainer, sampler, proc)
    elif proc.world > 1:
        for tensor in model.state_dict().values():
            dist.broadcast(tensor, 0)
    if start >= iters:
        raise CheckpointError(f"{resume} is already at iteration {start}; ask for more with --iters N (> {start})")
    if proc.rank == 0:
        _prepare_folder(out, cfg, resumed_at=start if state is not None else None)
    return Run(cfg, dataset, out, iters, proc, original_ids, model, trainer, sampler, start,
               Path(resume) if resume is not None else None)


def _read_resume(path: Path, cfg: Config, dataset: str, identities: int) -> dict[str, Any]:
    """The checkpoint to resume from, refused when it was trained with another config or on other data."""
    state = load_checkpoint(path)
    diffs = resume_mismatch(state["config"], cfg)
    if diffs:
        raise CheckpointError(f"{path} was trained with another config: " + "; ".join(diffs) +
                              f" (on resume only {', '.join(sorted(RECOVERY_FIELDS))} and logging/length "
                              "settings may change)")
    if int(state["num_classes"]) != identities:
        raise CheckpointError(f"{path} has {state['num_classes']} classes but {dataset} has "
                              f"{identities} training identities: is it the same dataset?")
    return state


def _load_pretrained(model: HiCMD, cfg: Config, pretrained: str | Path | None) -> None:
    """ImageNet weights for the attribute encoders and H: a file or torchvision download when `pretrained` is
    given, else the packaged weights the config names (sha256-checked), else none."""
    if pretrained is None:
        if cfg.model.pretrained != "none":
            load_packaged(model, cfg.model.pretrained)
        return
    try:
        for module in (model.attribute["rgb"], model.attribute["ir"], model.hfl.h):
            load_imagenet_weights(module, pretrained)
    except (OSError, KeyError, ValueError) as exc:
        raise CheckpointError(f"pretrained weights {pretrained}: {exc}") from None


def _restore(state: dict[str, Any], trainer: Trainer, sampler: PairSampler, proc: Process) -> int:
    """Weights, optimisers, and (with as many processes as before) this rank's RNG and sampler position: the run
    continues bit-exactly. Returns the checkpoint's iteration."""
    if "trainer" not in state or "ranks" not in state:  # e.g. `hicmd convert-original`'s: weights only
        raise CheckpointError("the --resume checkpoint holds weights but no optimiser state (a converted one?), so "
                              "no run can continue from it: evaluate or export it, and resume from a RUN/last.pt")
    try:
        trainer.model.load_state_dict(state["model"])
    except RuntimeError as exc:  # torch's text spans lines: one line of it
        why = " ".join(str(exc).split())[:200]
        raise CheckpointError(f"the --resume checkpoint's weights do not fit its config ({why})") from None
    trainer.load_state_dict(state["trainer"])
    changed = trainer.apply_learning_rates(state["config"]["train"])
    if changed and proc.rank == 0:  # the recovery from a non-finite stop: a deliberate, logged change
        log.warning("resuming with changed %s: this run is no longer a bit-exact continuation", ", ".join(changed))
    mine = state["ranks"][proc.rank] if proc.rank < len(state["ranks"]) else None
    if mine is not None and int(state["world_size"]) == proc.world:
        set_rng_state(mine["rng"])
        sampler.load_state_dict(mine["sampler"])
    elif proc.rank == 0:
        log.warning("resuming with %d processes instead of %d: batches will differ from the original run",
                    proc.world, state["world_size"])
    return int(state["iteration"])


def _prepare_folder(out: Path, cfg: Config, resumed_at: int | None) -> None:
    """Create `out`, drop what a crashed run left behind, and write config.json."""
    out.mkdir(parents=True, exist_ok=True)
    for stale in remove_stale_temp_files(out):
        log.info("removed %s, left by a save that never finished", stale.name)
    if resumed_at is not None:  # rows logged after the checkpoint belong to a run that crashed
        truncate_log(out / "log.csv", resumed_at)
    write_atomically(out / "config.json", json.dumps(config_to_dict(cfg), indent=1) + "\n")
