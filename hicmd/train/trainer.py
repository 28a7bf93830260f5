"""The Hi-CMD trainer: one D step then one G step per iteration (docs/reference/model.md §12-13). The two halves of
the objective are in idpig.py (image generation: the D step and most of the G step) and hfl.py (identification, in
the G step).

Optimisers: Adam for both encoder pairs + the shared decoder, Adam for both discriminators, SGD (Nesterov) for
H / bottleneck / classifier with alpha in its own group; StepLR on all three, stepped once per iteration.
Multi-process training all-reduces gradients by hand after every backward (the D/G alternation runs several
forwards per step, which DistributedDataParallel's single-forward bookkeeping does not fit) and averages
BatchNorm statistics after every iteration, so all replicas stay identical.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any, Iterable

import torch
import torch.distributed as dist
from torch import Tensor, nn

from hicmd.config import Config
from hicmd.model import HiCMD
from hicmd.train import idpig
from hicmd.train.hfl import hfl_losses
from hicmd.train.sampler import Batch

__all__ = ["Trainer"]

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _finite_gradients(params: list[nn.Parameter]) -> bool:
    """One reduction instead of a check per tensor: the total norm is finite only when every gradient is."""
    return not params or bool(torch.isfinite(torch.nn.utils.get_total_norm([p.grad for p in params])))


class Trainer:
    """Owns the model, the three optimisers, their schedulers and (fp16 only) the gradient scalers."""

    def __init__(self, model: HiCMD, cfg: Config, device: torch.device | str = "cpu"):
        t = cfg.train
        if t.amp not in ("none", *AMP_DTYPES):
            raise ValueError(f"train.amp must be none, bf16 or fp16, got {t.amp!r}")
        self.cfg, self.device = cfg, torch.device(device)
        self.memory_format = torch.channels_last if t.channels_last else torch.contiguous_format
        self.model = model.to(self.device, memory_format=self.memory_format).train()
        gen = [*model.prototype.parameters(), *model.attribute.parameters(), *model.decoder.parameters()]
        self.dis_params = list(model.discriminator.parameters())
        id_params = [p for n, p in model.hfl.named_parameters() if n != "alpha"]
        self.gen_params, self.id_params = gen, [*id_params, model.hfl.alpha]
        self.opt = {
            "gen": torch.optim.Adam(gen, lr=t.lr_gen, betas=t.betas, weight_decay=t.weight_decay),
            "dis": torch.optim.Adam(self.dis_params, lr=t.lr_dis, betas=t.betas, weight_decay=t.weight_decay),
            "id": torch.optim.SGD([{"params": id_params, "lr": t.lr_id},
                                   {"params": [model.hfl.alpha], "lr": t.lr_alpha}],
                                  lr=t.lr_id, momentum=t.momentum, nesterov=True, weight_decay=t.weight_decay),
        }
        self.sched = {k: torch.optim.lr_scheduler.StepLR(o, t.step_size, t.gamma) for k, o in self.opt.items()}
        fp16 = t.amp == "fp16"
        self.scaler = {k: torch.amp.GradScaler(self.device.type, enabled=fp16) for k in ("dis", "gen")}
        self.amp_dtype = AMP_DTYPES.get(t.amp)
        self.skipped = 0  # non-finite steps so far
        self.consecutive = 0  # non-finite iterations in a row

    # ------------------------------------------------------------------ helpers

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _step(self, loss: Tensor, names: Iterable[str], scaler: torch.amp.GradScaler,
              params: list[nn.Parameter]) -> bool:
        """Backward + optimiser steps, unless the loss or (unscaled) a gradient is non-finite on any rank: then
        nothing changes. A finite loss can still give non-finite gradients, and one such step makes the weights NaN
        for good (a step of the tiny recipe's ID-PIG phase after a 4,200-iteration warm-up did that to the generator
        and encoders, at iteration 4,343 of two runs, before this check)."""
        finite = torch.isfinite(loss.detach()).float()
        if _distributed():
            dist.all_reduce(finite, op=dist.ReduceOp.MIN)
        for name in names:
            self.opt[name].zero_grad(set_to_none=True)
        if not bool(finite):
            return False
        scaler.scale(loss).backward()
        if _distributed():
            world = dist.get_world_size()
            for p in params:
                if p.grad is not None:
                    dist.all_reduce(p.grad)
                    p.grad.div_(world)
        # a GradScaler in use skips such steps itself (and lowers its scale); after the all-reduce every rank agrees
        if not scaler.is_enabled() and not _finite_gradients([p for p in params if p.grad is not None]):
            for name in names:
                self.opt[name].zero_grad(set_to_none=True)
            return False
        for name in names:
            scaler.step(self.opt[name])
        scaler.update()
        return True

    def _floats(self, terms: dict[str, Tensor | float]) -> dict[str, float]:
        keys = list(terms)
        values = torch.stack([torch.as_tensor(terms[k], dtype=torch.float32, device=self.device).detach().float()
                              for k in keys]).tolist()
        return dict(zip(keys, values))

    # ------------------------------------------------------------------ D step

    def dis_update(self, batch: Batch) -> dict[str, float]:
        """LSGAN + R1 on both discriminators against x_ba, x_ab and the illumination-only x_ba3, x_ab3."""
        with torch.no_grad(), self.autocast():
            images = idpig.translate(self.model, batch.x_a, batch.x_b, idpig.D_IMAGES)
        with self.autocast():
            d = idpig.discriminator_terms(self.model, self.cfg.loss, batch.x_a, batch.x_b, images)
        ok = self._step(d["TOT_D"], ["dis"], self.scaler["dis"], self.dis_params)
        self._count(ok, "dis")
        return self._floats({**d, "D_lr": self.opt["dis"].param_groups[0]["lr"], "D_skipped": float(not ok)})

    # ------------------------------------------------------------------ G step

    def gen_update(self, batch: Batch) -> dict[str, float]:
        """ID-PIG (reconstructions, cycle, code reconstruction, KL pull, adversarial) + HFL, one backward."""
        w, model = self.cfg.loss, self.model
        for p in self.dis_params:  # D gets no gradient from the G step
            p.requires_grad_(False)
        with self.autocast():
            images = idpig.translate(model, batch.x_a, batch.x_b, idpig.G_IMAGES, cycle=True)
            t = idpig.generator_terms(model, w, batch.x_a, batch.x_b, images)
            t.update(hfl_losses(model, self.cfg, batch, images["x_ba"].detach(), images["x_ab"].detach()))
            t["TOT_ID"] = w.ce * t["CE"] + w.triplet * t["TRIP"]
            total = t["TOT_G"] + t["TOT_ID"]
        for p in self.dis_params:
            p.requires_grad_(True)
        ok = self._step(total, ["gen", "id"], self.scaler["gen"], self.gen_params + self.id_params)
        self._count(ok, "gen")
        lrs = {"G_lr": self.opt["gen"].param_groups[0]["lr"], "ID_lr": self.opt["id"].param_groups[0]["lr"]}
        self._end_iteration()
        return self._floats({"TOTAL": total, **t, **lrs, "alpha": model.hfl.alpha, "G_skipped": float(not ok)})

    # ------------------------------------------------------------------ ID warm-up

    ID_PIG_TERMS = ("TOT_D", "D_a", "D_b", "D_r1", "G_rec_x", "G_cross_x", "G_cyc_x", "S_remain", "S_ID",
                    "style_kl", "G_adv", "G_rec_s", "TOT_G")

    def id_update(self, batch: Batch) -> dict[str, float]:
        """HFL alone, for the first `train.warmup_id` iterations (the reference's cnt_warmID switch; 0 in the paper
        recipe). No image is generated: the real RGB / IR images of the same identities stand in for x_ba / x_ab,
        which is what those translations aim to be. With `train.warmup_shared` the IR images go through the RGB
        encoders. Returns the same keys as a full iteration (ID-PIG terms NaN)."""
        w, model = self.cfg.loss, self.model
        ir_encoders = "rgb" if self.cfg.train.warmup_shared else "ir"
        with self.autocast():
            t = hfl_losses(model, self.cfg, batch, batch.x_a, batch.x_b, ir_encoders)
            t["TOT_ID"] = w.ce * t["CE"] + w.triplet * t["TRIP"]
        self._iteration_ok = True
        ok = self._step(t["TOT_ID"], ["gen", "id"], self.scaler["gen"], self.gen_params + self.id_params)
        self._count(ok, "gen")
        lrs = {"D_lr": self.opt["dis"].param_groups[0]["lr"], "G_lr": self.opt["gen"].param_groups[0]["lr"],
               "ID_lr": self.opt["id"].param_groups[0]["lr"]}
        self._end_iteration()
        nan = dict.fromkeys(self.ID_PIG_TERMS, float("nan"))
        return self._floats({"TOTAL": t["TOT_ID"], **nan, **t, **lrs, "alpha": model.hfl.alpha,
                             "D_skipped": 0.0, "G_skipped": float(not ok)})

    @torch.no_grad()
    def copy_rgb_encoders_to_ir(self) -> None:
        """IR prototype and attribute encoders := the RGB ones (weights and BatchNorm statistics): how the IR
        encoders start after a shared warm-up, just as the reference's IR encoders start as deep copies of the RGB
        ones."""
        for part in (self.model.prototype, self.model.attribute):
            for dst, src in zip(part["ir"].state_dict().values(), part["rgb"].state_dict().values()):
                dst.copy_(src)

    def _end_iteration(self) -> None:
        """Step all three schedules (they count iterations) and keep replicas' BatchNorm statistics equal."""
        with warnings.catch_warnings():  # in the ID warm-up D does not step, yet its schedule still counts
            warnings.simplefilter("ignore", UserWarning)
            for sched in self.sched.values():
                sched.step()
        if _distributed():
            self._sync_buffers()

    def _count(self, ok: bool, step: str) -> None:
        # An iteration is "non-finite" when either of its two steps was skipped; D runs first and resets.
        if step == "dis":
            self._iteration_ok = ok
            return
        if ok and self._iteration_ok:
            self.consecutive = 0
        else:
            self.skipped += 1
            self.consecutive += 1

    def _sync_buffers(self) -> None:
        """Average floating buffers (BatchNorm running statistics) over the replicas."""
        world = dist.get_world_size()
        for buf in self.model.buffers():
            if buf.is_floating_point():
                dist.all_reduce(buf)
                buf.div_(world)

    # ------------------------------------------------------------------ samples and state

    @torch.no_grad()
    def translate(self, x_a: Tensor, x_b: Tensor) -> dict[str, Tensor]:
        """Eval-mode translations for sample grids: real, cross-modality, reconstructions, cycles."""
        model, was_training = self.model, self.model.training
        model.eval()
        try:
            t = idpig.translate(model, x_a, x_b, idpig.GRID_IMAGES, cycle=True)
        finally:
            model.train(was_training)
        return {"x_rgb": x_a, "x_ir": x_b, "rgb->ir": t["x_ab"], "ir->rgb": t["x_ba"], "rgb rec": t["x_a_rec"],
                "ir rec": t["x_b_rec"], "rgb cycle": t["x_aba"], "ir cycle": t["x_bab"]}

    def state_dict(self) -> dict[str, Any]:
        return {
            "optimizers": {k: o.state_dict() for k, o in self.opt.items()},
            "schedulers": {k: s.state_dict() for k, s in self.sched.items()},
            "scalers": {k: s.state_dict() for k, s in self.scaler.items()},
            "skipped": self.skipped,
            "consecutive": self.consecutive,
        }

    def apply_learning_rates(self, saved_train: dict[str, Any]) -> list[str]:
        """After loading a checkpoint trained with other base learning rates (a resume after a non-finite stop),
        scale every group's current and base rate by new / saved, so the StepLR schedule keeps its position.
        Returns the fields that changed."""
        t = self.cfg.train
        groups = {"lr_gen": [self.opt["gen"].param_groups[0]], "lr_dis": [self.opt["dis"].param_groups[0]],
                  "lr_id": [self.opt["id"].param_groups[0]], "lr_alpha": [self.opt["id"].param_groups[1]]}
        changed = [k for k in ("lr_gen", "lr_dis", "lr_id", "lr_alpha", "amp")
                   if k in saved_train and saved_train[k] != getattr(t, k)]
        for name in changed:
            if name == "amp":
                continue  # the scalers follow the new config already; they start afresh
            ratio = getattr(t, name) / float(saved_train[name])
            for group in groups[name]:
                group["initial_lr"] = group.get("initial_lr", group["lr"]) * ratio
                group["lr"] *= ratio
        for opt_name, sched in self.sched.items():
            sched.base_lrs = [g["initial_lr"] for g in self.opt[opt_name].param_groups]
        return [f"train.{name}" for name in changed]

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k, o in self.opt.items():
            o.load_state_dict(state["optimizers"][k])
        for k, s in self.sched.items():
            s.load_state_dict(state["schedulers"][k])
        for k, s in self.scaler.items():
            if state["scalers"].get(k):
                s.load_state_dict(state["scalers"][k])
        self.skipped, self.consecutive = int(state["skipped"]), int(state["consecutive"])
