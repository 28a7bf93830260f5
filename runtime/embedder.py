"""Crops in, L2-normalised embeddings out, through one backend per modality. Torch-free.

Crops are what OpenCV hands over: BGR uint8 (H, W, 3) of any size, or 2-D gray (IR). They are resized to the
manifest's input size with PIL bicubic (runtime/resize.py: the resize training and evaluation use, which the
manifest records), put into the manifest's colour order, stacked into a reused uint8 NHWC buffer and
sent to the backend in one call per modality batch; the graph does mean/std normalisation itself. Where the
manifest says `mirror`, each batch runs a second time mirrored left-right and the two embeddings are summed: a
person is the same person mirrored, a crop's noise (a box edge cutting a shoulder, the background) is not.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable, Protocol

import cv2
import numpy as np

from hicmd.modality import MODALITIES, Modality

from .backends import Backend, open_backend
from .manifest import Manifest, ManifestError, load_manifest
from .resize import RESIZE, resize

__all__ = ["Embedder", "MODALITIES", "summed"]

log = logging.getLogger(__name__)

# (channels, manifest colour) -> OpenCV conversion; None = already in the right order.
_CONVERSIONS = {
    (1, "RGB"): cv2.COLOR_GRAY2RGB, (3, "RGB"): cv2.COLOR_BGR2RGB, (4, "RGB"): cv2.COLOR_BGRA2RGB,
    (1, "BGR"): cv2.COLOR_GRAY2BGR, (3, "BGR"): None, (4, "BGR"): cv2.COLOR_BGRA2BGR,
}


class CropEmbedder(Protocol):
    """What the stream needs of an embedder: unit-length embeddings of BGR person crops (Embedder is the real one;
    its `manifest`, when present, supplies the model's measured gates)."""

    def embed(self, crops: list[np.ndarray], modality: Modality) -> np.ndarray:
        """(N, D) float32 embeddings of `crops` seen by the `modality` camera."""
        ...

    def embed_pair(self, rgb_crops: list[np.ndarray], ir_crops: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Both cameras' crops in one call (backends that can run the two embedders side by side do)."""
        ...


class Embedder:
    """`embed(crops, modality) -> (N, D) float32`. Not thread-safe: the staging buffer is shared between calls."""

    def __init__(self, manifest: Manifest | str | Path, backend: str = "auto", device: str = "auto",
                 precision: str = "auto", threads: int | None = None,
                 modalities: Iterable[str] = MODALITIES, url: str | None = None, mirror: bool | None = None) -> None:
        self.manifest = manifest if isinstance(manifest, Manifest) else load_manifest(manifest)
        self.mirror = self.manifest.mirror if mirror is None else mirror  # None: as the model folder says
        spec = self.manifest.input
        if spec.layout != "NHWC" or spec.dtype != "uint8" or spec.color not in ("RGB", "BGR"):
            raise ManifestError(f"manifest input is {spec.layout} {spec.dtype} {spec.color}; this runtime feeds "
                             f"NHWC uint8 RGB/BGR: re-export with this hicmd version")
        if spec.resize and spec.resize != RESIZE:
            raise ManifestError(f"the model was exported for crops resized with {spec.resize!r}, this runtime resizes "
                                f"with {RESIZE!r}: re-export it with this hicmd version")
        if not spec.resize:  # exported before manifests recorded it: served as training now resizes, with a note
            log.warning("manifest.json does not record its resize (exported by an older hicmd); crops are resized "
                        "with %s as training and evaluation now do: re-export to record it", RESIZE)
        self.input_name, self.color = spec.name, spec.color
        self.size = (spec.height, spec.width)
        self.dim = self.manifest.embedding_dim
        self._buffer = np.empty((0, *self.size, 3), np.uint8)
        self.backends: dict[str, Backend] = {}
        try:
            for modality in modalities:
                if modality not in MODALITIES:
                    raise ValueError(f"unknown modality {modality!r}; use rgb or ir")
                self.backends[modality] = open_backend(self.manifest, "embedder", modality, backend=backend,
                                                       device=device, precision=precision, threads=threads, url=url)
        except BaseException:
            self.close()
            raise

    def describe(self, mirror: bool = True) -> str:
        """One line per modality: which backend, device and file runs it; then (`mirror`) whether `embed` also runs
        each crop mirrored (`encode`, which the translator uses, never does)."""
        lines = [f"{m}: {b.description}" for m, b in self.backends.items()]
        if mirror and self.mirror != self.manifest.mirror:  # the gates were measured the other way
            measured = "with" if self.manifest.mirror else "without"
            lines.append(f"mirror images {'on' if self.mirror else 'off'}: the model's gates were measured {measured} "
                         "them")
        elif mirror and self.mirror:
            lines.append("mirror images on: each crop is embedded twice, as seen and mirrored")
        return "\n".join(lines)

    # ------------------------------------------------------------------ preprocessing

    def preprocess(self, crops: list[np.ndarray]) -> np.ndarray:
        """Stack crops into the staging buffer as (N, H, W, 3) uint8 in the manifest's colour order (a view)."""
        if len(crops) > len(self._buffer):  # grow geometrically so steady state allocates nothing
            self._buffer = np.empty((max(len(crops), 2 * len(self._buffer)), *self.size, 3), np.uint8)
        height, width = self.size
        for i, crop in enumerate(crops):
            crop = np.asarray(crop)
            if crop.dtype != np.uint8:
                raise ValueError(f"crop {i} has dtype {crop.dtype}; the embedder takes uint8 images "
                                 f"(scale 16-bit thermal frames to 8 bits first)")
            channels = 1 if crop.ndim == 2 else (crop.shape[2] if crop.ndim == 3 else 0)
            if (channels, self.color) not in _CONVERSIONS or crop.shape[0] == 0 or crop.shape[1] == 0:
                raise ValueError(f"crop {i} has shape {crop.shape}; expected a non-empty HxW, HxWx1, HxWx3 (BGR) "
                                 f"or HxWx4 (BGRA) image")
            if channels == 4:  # drop alpha first: PIL would resample RGBA with premultiplied alpha
                crop, channels = np.ascontiguousarray(crop[..., :3]), 3
            resized = resize(crop, height, width)
            if resized.ndim == 3 and channels == 1:
                resized = resized[..., 0]
            conversion = _CONVERSIONS[(channels, self.color)]
            if conversion is None:
                self._buffer[i] = resized
            else:
                cv2.cvtColor(resized, conversion, dst=self._buffer[i])
        return self._buffer[: len(crops)]

    # ------------------------------------------------------------------ inference

    def encode(self, crops: list[np.ndarray], modality: str) -> dict[str, np.ndarray]:
        """All graph outputs (embedding, prototype, attribute) for a batch of crops of one modality."""
        backend = self._backend(modality)
        return backend.run({self.input_name: self.preprocess(crops)})

    def embed(self, crops: list[np.ndarray], modality: str) -> np.ndarray:
        """(N, D) float32 L2-normalised embeddings; (0, D) for no crops."""
        if len(crops) == 0:
            return np.zeros((0, self.dim), np.float32)
        backend = self._backend(modality)
        images = self.preprocess(crops)
        # mirrored: the resized batch flipped (resize and colour conversion commute with the flip, bit for bit), as
        # export's gates embed; a second call of N (batches over a backend's cap are split)
        mirrored = np.ascontiguousarray(images[:, :, ::-1]) if self.mirror else None
        embedding = _unit(backend.run({self.input_name: images})["embedding"])  # a copy: outputs may be reused
        if embedding.shape[1:] != (self.dim,):  # the manifest is not hashed: a hand edit must not pass silently
            raise ManifestError(f"the {modality} graph gives {embedding.shape[1:]} embeddings, manifest.json says "
                                f"embedding_dim {self.dim}: re-export the model")
        if mirrored is not None:
            embedding = summed(embedding, backend.run({self.input_name: mirrored})["embedding"])
        return embedding

    def _backend(self, modality: str) -> Backend:
        if modality not in self.backends:
            raise ValueError(f"no {modality!r} embedder open (have: {', '.join(self.backends)})")
        return self.backends[modality]

    def embed_pair(self, rgb_crops: list[np.ndarray], ir_crops: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Embeddings for both cameras' crops: (N_rgb, D), (N_ir, D)."""
        return self.embed(rgb_crops, "rgb"), self.embed(ir_crops, "ir")

    def close(self) -> None:
        for backend in self.backends.values():
            backend.close()
        self.backends = {}

    def __enter__(self) -> "Embedder":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def summed(*embeddings: np.ndarray) -> np.ndarray:
    """One embedding per row from several of the same crops (as seen and mirrored): the unit-length sum of unit
    rows. Export's gates embed with it too (export/gates.py), so they are measured on what the stream computes."""
    return _unit(sum(_unit(e) for e in embeddings))


def _unit(embedding: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1, as a new float32 array. The graph normalises already; doing it again costs nothing
    and protects against FP16 drift."""
    embedding = np.asarray(embedding, dtype=np.float32)
    return embedding / np.maximum(np.linalg.norm(embedding, axis=1, keepdims=True), 1e-12)
