"""The per-iteration batch of the reference recipe (docs/reference/model.md §11), drawn deterministically.

Each iteration draws `pos_ids + neg_ids` distinct identities. Each positive identity gives one RGB and one IR
image with the same label (x_a[k] and x_b[k] share a label: ID-PIG pairs); the negatives feed HFL only, the first
half as RGB images, the rest as IR images (reference: 2 RGB + 2 IR from 4 further identities).

`train.sampling` says how identities are drawn:
- "image" (the reference's PosNegSampler, `paper`): every training image is the pivot once per epoch, in a shuffled
  order, and gives the first positive identity (the pivot is its image of that modality); each further positive is
  the identity of a random IR image, each negative that of a random image of its modality, all distinct. Identities
  are so drawn in proportion to their image count, as in the authors' training (it matters on SYSU-MM01 and LLCM,
  whose identities have very different image counts; RegDB's all have 10 + 10).
- "identity": identities uniformly at random (the `tiny` recipe's).

All randomness (identities, images, flips) comes from one `torch.Generator`, whose state is part of the
checkpoint, so a resumed run draws exactly the batches of an uninterrupted one. Decoded images are cached in
memory when the training set is small; an unreadable image is logged, counted, excluded and replaced by another
image of the same identity and modality.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch
from torch import Tensor

from hicmd.config import Config
from hicmd.data import DataError, Record
from hicmd.modality import MODALITIES

__all__ = ["Batch", "PairSampler", "reference_schedule", "schedule_note"]

log = logging.getLogger(__name__)

CACHE_LIMIT_BYTES = 1 << 30  # decode every image once when the whole set fits in 1 GiB
REMAP_KNOTS = 4  # control points of the random grey-level curve of `train.remap_p`
# The reference's iteration budget (set_option.py: step_size x 4 steps), rounded up to whole epochs of pivots
REFERENCE_BUDGET = {"regdb": (100_000, 25_000), "sysu": (200_000, 50_000)}


def reference_schedule(kind: str, images: int) -> tuple[int, int] | None:
    """(iterations, step_size) the authors' code trains on a dataset of `images` training images, or None where it
    has no recipe (LLCM). It trains whole epochs of one pivot per image, as many as reach its budget (util_etc.py:
    ceil(num_cnt / images) epochs): RegDB 4,120 images -> 25 x 4,120 = 103,000."""
    if kind not in REFERENCE_BUDGET:
        return None
    budget, step_size = REFERENCE_BUDGET[kind]
    return math.ceil(budget / images) * images, step_size


def schedule_note(kind: str, images: int, iters: int, step_size: int) -> str:
    """One log line: the run's length in epochs of pivots, and the reference's schedule where it differs."""
    note = f"{iters} iterations = {iters / images:.2f} epochs of {images} training images (one pivot per image)"
    reference = reference_schedule(kind, images)
    if reference is not None and reference != (iters, step_size):
        note += (f"; the authors' schedule for this dataset is {reference[0]} iterations, step_size {reference[1]}"
                 f" (--iters {reference[0]} --set train.step_size={reference[1]})")
    return note


@dataclass
class Batch:
    """One iteration's images (ImageNet-normalised float tensors on the CPU) and labels."""

    x_a: Tensor  # (P, 3, H, W) RGB images of the positive identities
    x_b: Tensor  # (P, 3, H, W) IR images of the same identities, same order
    labels: Tensor  # (P,) shared labels of x_a / x_b
    neg_a: Tensor  # (Na, 3, H, W) RGB images of other identities
    neg_a_labels: Tensor
    neg_b: Tensor  # (Nb, 3, H, W) IR images of other identities
    neg_b_labels: Tensor

    def to(self, device: torch.device | str, memory_format: torch.memory_format = torch.contiguous_format) -> "Batch":
        def move(t: Tensor) -> Tensor:
            t = t.to(device, non_blocking=True)
            return t.contiguous(memory_format=memory_format) if t.dim() == 4 else t

        return Batch(**{k: move(v) for k, v in vars(self).items()})


class PairSampler:
    """Infinite, seeded stream of `Batch`es over training records (labels 0..N-1)."""

    def __init__(self, records: list[Record], cfg: Config, seed: int, cache: bool | None = None):
        t, m = cfg.train, cfg.model
        self.pos_ids, self.neg_ids, self.flip, self.gray_p = t.pos_ids, t.neg_ids, t.flip, t.gray_p
        self.remap_p = t.remap_p
        self.height, self.width, self.mean, self.std = m.height, m.width, m.mean, m.std
        by_id: dict[int, dict[str, list[Record]]] = {}
        for r in sorted(records, key=lambda r: (r.pid, r.modality, str(r.path))):
            by_id.setdefault(r.pid, {"rgb": [], "ir": []})[r.modality].append(r)
        lacking = [f"{pid} ({'no RGB' if not d['rgb'] else 'no IR'})" for pid, d in by_id.items()
                   if not d["rgb"] or not d["ir"]]
        if lacking:
            raise DataError(f"{len(lacking)} training identities lack a modality; every identity needs at least one "
                            f"RGB and one IR image: {', '.join(lacking[:20])}{' ...' if len(lacking) > 20 else ''}")
        need = self.pos_ids + self.neg_ids
        if len(by_id) < need:
            raise DataError(f"the training set has {len(by_id)} identities but a batch needs pos_ids + neg_ids = "
                            f"{need}; lower train.pos_ids / train.neg_ids or use more identities")
        self.ids = sorted(by_id)
        self.by_id = by_id
        self.sampling = t.sampling
        # every image, in one fixed order: the pivots of an epoch are a permutation of these
        self.images = [r for pid in self.ids for m in MODALITIES for r in by_id[pid][m]]
        self._counts = torch.tensor([[len(by_id[pid][m]) for m in MODALITIES] for pid in self.ids],
                                    dtype=torch.float64)  # images per (identity, modality)
        self._row = {pid: row for row, pid in enumerate(self.ids)}
        self.generator = torch.Generator().manual_seed(seed)
        self._epoch = torch.zeros(0, dtype=torch.long)  # this epoch's pivot order, drawn when the last one ends
        self._next_pivot = 0
        self.bad: set[str] = set()  # unreadable image paths, excluded from then on
        self.corrupt = 0  # how many reads failed
        if cache is None:
            cache = len(records) * self.height * self.width * 3 <= CACHE_LIMIT_BYTES
        self._cache: dict[str, np.ndarray] | None = {} if cache else None

    # ------------------------------------------------------------------ drawing

    def _randint(self, n: int) -> int:
        return int(torch.randint(n, (1,), generator=self.generator))

    def _read(self, record: Record) -> np.ndarray:
        from hicmd.data.io import read_image

        key = str(record.path)
        if self._cache is not None and key in self._cache:
            return self._cache[key]
        image = read_image(record.path, self.height, self.width)
        if self._cache is not None:
            self._cache[key] = image
        return image

    def _draw(self, pid: int, modality: str, record: Record | None = None) -> np.ndarray:
        """A random readable image of `pid` in `modality` (`record` itself, the pivot, while it is readable),
        flipped with probability 0.5."""
        while True:
            if record is None or str(record.path) in self.bad:
                candidates = [r for r in self.by_id[pid][modality] if str(r.path) not in self.bad]
                if not candidates:
                    raise DataError(f"identity {pid} has no readable {modality.upper()} image left "
                                    f"({self.corrupt} unreadable images met so far)")
                record = candidates[self._randint(len(candidates))]
            flip = bool(torch.rand((), generator=self.generator) < 0.5) and self.flip
            try:
                image = self._read(record)
            except DataError as exc:
                self.bad.add(str(record.path))
                self.corrupt += 1
                log.warning("skipping unreadable training image (%d so far): %s", self.corrupt, exc)
                continue
            if modality == "rgb" and self.gray_p > 0 and bool(torch.rand((), generator=self.generator) < self.gray_p):
                # Random grayscale: RGB images lose the colour cue that IR never has, so the RGB encoders learn
                # the shape and texture cues both modalities share (a standard VI-ReID augmentation).
                image = np.repeat(cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
            if self.remap_p > 0 and bool(torch.rand((), generator=self.generator) < self.remap_p):
                image = self._remap(image, modality)
            return image[:, ::-1] if flip else image

    def _remap(self, image: np.ndarray, modality: str) -> np.ndarray:
        """Random intensity remap: a random signed mix of the colour channels (RGB), then a random piecewise-linear
        grey-level curve. Regions and edges survive, their brightness does not, so neither colour nor a garment's
        IR brightness (which a cross-modality match cannot use) is a reliable cue; shape and pattern are."""
        pixels = image.astype(np.float32)
        if modality == "rgb":
            weights = (torch.rand(3, generator=self.generator).numpy() * 2 - 1).astype(np.float32)
            gray = pixels @ weights
            gray = (gray - gray.min()) * (255.0 / max(float(gray.max() - gray.min()), 1e-3))
        else:
            gray = pixels[..., 0]
        knots = (torch.rand(REMAP_KNOTS, generator=self.generator).numpy() * 255).astype(np.float32)
        lut = np.interp(np.arange(256), np.linspace(0, 255, REMAP_KNOTS), knots).astype(np.uint8)
        return np.repeat(lut[np.clip(gray, 0, 255).astype(np.uint8)][..., None], 3, axis=2)

    def _tensor(self, images: list[np.ndarray]) -> Tensor:
        from hicmd.data.io import to_tensor_batch

        return to_tensor_batch([np.ascontiguousarray(i) for i in images], self.mean, self.std)

    def _pivot(self) -> Record:
        """The next image of this epoch's shuffled order; a new order when the epoch is over."""
        if self._next_pivot >= len(self._epoch):
            self._epoch, self._next_pivot = torch.randperm(len(self.images), generator=self.generator), 0
        self._next_pivot += 1
        return self.images[int(self._epoch[self._next_pivot - 1])]

    def _identity_of_random_image(self, modalities: list[str], used: list[int]) -> tuple[str, int]:
        """(modality, pid) of a uniformly random image of `modalities` whose identity is not in `used`: an identity
        comes with the probability of its share of those images."""
        weights = self._counts.clone()
        weights[[self._row[pid] for pid in used]] = 0
        for column, modality in enumerate(MODALITIES):
            if modality not in modalities:
                weights[:, column] = 0
        pick = int(torch.multinomial(weights.view(-1), 1, generator=self.generator))
        return MODALITIES[pick % 2], self.ids[pick // 2]

    def _reference_identities(self, pivot: Record) -> tuple[list[int], list[int], list[int]]:
        """Positive and negative identities as the reference's PosNegSampler draws them around a pivot image."""
        used = [pivot.pid]
        for _ in range(self.pos_ids - 1):  # its other positives: identities of random IR images
            used.append(self._identity_of_random_image(["ir"], used)[1])
        pos = list(used)
        want = {"rgb": (self.neg_ids + 1) // 2, "ir": self.neg_ids // 2}
        neg: dict[str, list[int]] = {"rgb": [], "ir": []}
        while any(len(neg[m]) < want[m] for m in want):  # random images of modalities still short, new ids only
            modality, pid = self._identity_of_random_image([m for m in want if len(neg[m]) < want[m]], used)
            neg[modality].append(pid)
            used.append(pid)
        return pos, neg["rgb"], neg["ir"]

    def next(self) -> Batch:
        if self.sampling == "image":
            pivot = self._pivot()
            pos, neg_a, neg_b = self._reference_identities(pivot)
        else:
            order = torch.randperm(len(self.ids), generator=self.generator)[: self.pos_ids + self.neg_ids].tolist()
            chosen = [self.ids[i] for i in order]
            pos, neg = chosen[: self.pos_ids], chosen[self.pos_ids:]
            neg_a, neg_b = neg[: (len(neg) + 1) // 2], neg[(len(neg) + 1) // 2:]
            pivot = None

        def given(k: int, modality: str) -> Record | None:  # the pivot is its identity's image of its modality
            return pivot if k == 0 and pivot is not None and pivot.modality == modality else None

        x_a = [self._draw(pid, "rgb", given(k, "rgb")) for k, pid in enumerate(pos)]
        x_b = [self._draw(pid, "ir", given(k, "ir")) for k, pid in enumerate(pos)]
        n_a = [self._draw(pid, "rgb") for pid in neg_a]
        n_b = [self._draw(pid, "ir") for pid in neg_b]

        def labels(ids: list[int]) -> Tensor:
            return torch.tensor(ids, dtype=torch.long)

        empty = torch.zeros(0, 3, self.height, self.width)
        return Batch(
            x_a=self._tensor(x_a), x_b=self._tensor(x_b), labels=labels(pos),
            neg_a=self._tensor(n_a) if n_a else empty, neg_a_labels=labels(neg_a),
            neg_b=self._tensor(n_b) if n_b else empty, neg_b_labels=labels(neg_b),
        )

    # ------------------------------------------------------------------ checkpointing

    def state_dict(self) -> dict[str, Any]:
        """Plain tensors/lists only, so `torch.load(weights_only=True)` reads it back."""
        return {"generator": self.generator.get_state(), "bad": sorted(self.bad), "corrupt": self.corrupt,
                "epoch": self._epoch.clone(), "next_pivot": self._next_pivot}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.bad = set(state["bad"])
        self.corrupt = int(state["corrupt"])
        # checkpoints written before pivots existed start a new epoch
        self._epoch = state.get("epoch", torch.zeros(0, dtype=torch.long)).clone()
        self._next_pivot = int(state.get("next_pivot", 0))
