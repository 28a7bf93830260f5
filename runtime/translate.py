"""Attribute swapping through the exported generator: render a source person with a reference's ID-excluded codes.

Hi-CMD splits each of the attribute vector's `chunks` equal chunks into style (ID-discriminative), pose and
illumination ranges (manifest `attribute_layout`). Translation keeps the source's prototype and style dims and takes
the reference's pose and/or illumination dims, then decodes. Torch-free.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from hicmd.modality import MODALITIES

from .backends import open_backend
from .embedder import Embedder
from .manifest import Manifest, ManifestError, load_manifest

__all__ = ["SWAPS", "attribute_indices", "swap_indices", "swap_attributes", "Translator", "compose_grid"]

GENERATOR_PRECISION = {"int8": "auto", "bf16": "fp32"}
SWAPS = {"illumination": ("illumination",), "pose": ("pose",), "both": ("pose", "illumination")}


def attribute_indices(layout: dict[str, Any], attribute_dim: int, part: str) -> np.ndarray:
    """Absolute indices of `part` (style | pose | illumination) in every chunk, ascending."""
    chunks = int(layout["chunks"])
    if chunks < 1 or attribute_dim % chunks:
        raise ManifestError(f"manifest.json attribute_layout has {chunks} chunks, which do not divide "
                            f"attribute_dim {attribute_dim}")
    size = attribute_dim // chunks
    start, end = (int(v) for v in layout[part])
    if not 0 <= start < end <= size:
        raise ManifestError(f"manifest.json attribute_layout {part} range [{start}, {end}) does not fit a "
                            f"{size}-wide chunk")
    return (np.arange(chunks)[:, None] * size + np.arange(start, end)[None, :]).reshape(-1)


def swap_indices(layout: dict[str, Any], attribute_dim: int, swap: str) -> np.ndarray:
    """Indices the reference provides for a swap mode (illumination | pose | both)."""
    if swap not in SWAPS:
        raise ValueError(f"unknown swap {swap!r}; use one of {', '.join(SWAPS)}")
    return np.sort(np.concatenate([attribute_indices(layout, attribute_dim, p) for p in SWAPS[swap]]))


def swap_attributes(source: np.ndarray, reference: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Copy of `source` (…, A) with `indices` taken from `reference` (broadcast against it)."""
    mixed = np.array(np.broadcast_arrays(source, reference)[0], dtype=np.float32)
    mixed[..., indices] = np.broadcast_to(reference, mixed.shape)[..., indices]
    return mixed


class Translator:
    """Embedder graphs (for codes) + generator graph, opened on one backend choice."""

    def __init__(self, manifest: Manifest | str | Path, modalities: tuple[str, ...] = MODALITIES,
                 backend: str = "auto", device: str = "auto", precision: str = "auto",
                 threads: int | None = None) -> None:
        self.manifest = manifest if isinstance(manifest, Manifest) else load_manifest(manifest)
        self.embedder = Embedder(self.manifest, backend=backend, device=device, precision=precision,
                                 threads=threads, modalities=tuple(dict.fromkeys(modalities)))
        try:
            # INT8 and BF16 are embedder precisions: the generator stays FP32 / FP16 (the PSNR gate is its)
            self.generator = open_backend(self.manifest, "generator", None, backend=backend, device=device,
                                          precision=GENERATOR_PRECISION.get(precision, precision), threads=threads)
        except BaseException:
            self.embedder.close()
            raise

    def describe(self) -> str:
        return f"{self.embedder.describe(mirror=False)}\ngenerator: {self.generator.description}"

    def codes(self, images: list[np.ndarray], modality: str) -> tuple[np.ndarray, np.ndarray]:
        """(prototype (N,C,h,w), attribute (N,A)) float32 for BGR/gray images of one modality."""
        out = self.embedder.encode(images, modality)
        return out["prototype"].astype(np.float32), out["attribute"].astype(np.float32)

    def render(self, prototype: np.ndarray, attribute: np.ndarray) -> np.ndarray:
        """Generator output as (N, H, W, 3) uint8 BGR, ready for cv2.imwrite."""
        image = self.generator.run({"prototype": prototype, "attribute": attribute})["image"]
        image = np.clip(np.rint(image.astype(np.float32)), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)
        return np.ascontiguousarray(image[..., ::-1])  # RGB -> BGR

    def translate(self, sources: list[np.ndarray], src_modality: str, references: list[np.ndarray],
                  ref_modality: str, swap: str) -> np.ndarray:
        """(S, R, H, W, 3) uint8 BGR: source s rendered with reference r's swapped attributes."""
        if not sources or not references:
            raise ValueError("translate needs at least one source and one reference image")
        proto_s, attr_s = self.codes(sources, src_modality)
        _, attr_r = self.codes(references, ref_modality)
        indices = swap_indices(self.manifest.attribute_layout, self.manifest.attribute_dim, swap)
        mixed = swap_attributes(attr_s[:, None, :], attr_r[None, :, :], indices)  # (S, R, A)
        count_s, count_r = len(sources), len(references)
        prototype = np.repeat(proto_s, count_r, axis=0)
        images = self.render(prototype, mixed.reshape(count_s * count_r, -1))
        return images.reshape(count_s, count_r, *images.shape[1:])

    def close(self) -> None:
        self.embedder.close()
        self.generator.close()

    def __enter__(self) -> "Translator":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _tile(image: np.ndarray, height: int, width: int) -> np.ndarray:
    image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image[..., :3]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)


def compose_grid(sources: list[np.ndarray], references: list[np.ndarray], results: np.ndarray,
                 gap: int = 4) -> np.ndarray:
    """BGR grid: first row = references, first column = sources, cell (s, r) = results[s, r]; white gaps."""
    count_s, count_r, height, width = results.shape[:4]
    canvas = np.full((gap + (count_s + 1) * (height + gap), gap + (count_r + 1) * (width + gap), 3), 255, np.uint8)

    def put(row: int, col: int, image: np.ndarray) -> None:
        y, x = gap + row * (height + gap), gap + col * (width + gap)
        canvas[y:y + height, x:x + width] = image

    for r, ref in enumerate(references):
        put(0, r + 1, _tile(ref, height, width))
    for s, src in enumerate(sources):
        put(s + 1, 0, _tile(src, height, width))
        for r in range(count_r):
            put(s + 1, r + 1, results[s, r])
    return canvas
