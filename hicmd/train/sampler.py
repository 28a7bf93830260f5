"""The per-iteration batch of the reference recipe (model.md §11), drawn deterministically.

Each iteration draws `pos_ids + neg_ids` distinct identities. Each positive identity gives one RGB and one IR
image with the same label (x_a[k] and x_b[k] share a label: ID-PIG pairs); the negatives feed HFL only, the first
half as RGB images, the rest as IR images (reference: 2 RGB + 2 IR from 4 further identities).

All randomness (identities, images, flips) comes from one `torch.Generator`, whose state is part of the
checkpoint, so a resumed run draws exactly the batches of an uninterrupted one. Decoded images are cached in
memory when the training set is small; an unreadable image is logged, counted, excluded and replaced by another
image of the same identity and modality.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch
from torch import Tensor

from hicmd.config import Config
from hicmd.data import DataError, Record

__all__ = ["Batch", "PairSampler"]

log = logging.getLogger(__name__)

CACHE_LIMIT_BYTES = 1 << 30  # decode every image once when the whole set fits in 1 GiB
REMAP_KNOTS = 4  # control points of the random grey-level curve of `train.remap_p`


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
        self.generator = torch.Generator().manual_seed(seed)
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

    def _draw(self, pid: int, modality: str) -> np.ndarray:
        """A random readable image of `pid` in `modality`, flipped with probability 0.5."""
        while True:
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

    def next(self) -> Batch:
        order = torch.randperm(len(self.ids), generator=self.generator)[: self.pos_ids + self.neg_ids].tolist()
        chosen = [self.ids[i] for i in order]
        pos, neg = chosen[: self.pos_ids], chosen[self.pos_ids:]
        neg_a, neg_b = neg[: (len(neg) + 1) // 2], neg[(len(neg) + 1) // 2:]
        x_a = [self._draw(pid, "rgb") for pid in pos]
        x_b = [self._draw(pid, "ir") for pid in pos]
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
        return {"generator": self.generator.get_state(), "bad": sorted(self.bad), "corrupt": self.corrupt}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.bad = set(state["bad"])
        self.corrupt = int(state["corrupt"])
