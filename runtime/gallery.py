"""Gallery of enrolled people: DIR/<name>/*.png crops of either modality, so tracks get names. Torch-free.

Crops are biometric data: files are written 0600 and folders 0700, whatever the umask. A crop's modality comes from
its file name prefix (rgb_*, ir_*) or, failing that, from whether it is grey.
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from hicmd.errors import HicmdError

from .atomic import write_image

__all__ = ["GalleryError", "Gallery", "save_crop", "crop_modality"]

EXTS = (".png", ".jpg", ".jpeg", ".bmp")
NAME_RE = re.compile(r"[A-Za-z0-9][\w.-]{0,63}")


class GalleryError(HicmdError, ValueError):
    """A gallery folder or enrolment name that cannot be used."""


def crop_modality(path: Path, image: np.ndarray) -> str:
    stem = path.stem.lower()
    if stem.startswith(("ir_", "ir-", "thermal")):
        return "ir"
    if stem.startswith(("rgb_", "rgb-", "visible")):
        return "rgb"
    grey = image.ndim == 2 or bool(np.all(image[..., 0] == image[..., 1]) and np.all(image[..., 1] == image[..., 2]))
    return "ir" if grey else "rgb"


_warned: set[Path] = set()


def _private_dir(path: Path) -> None:
    """Create a folder 0700; never change the mode of one that exists (it may be shared on purpose, e.g. a 1777
    spool folder), but say so once when others can read it: the crops themselves are always written 0600."""
    try:
        path.mkdir(parents=True)
        os.chmod(path, 0o700)  # mkdir's mode is filtered by the umask
    except FileExistsError:
        mode = path.stat().st_mode
        if mode & 0o077 and path not in _warned:
            _warned.add(path)
            print(f"warning: gallery folder {path} is open to other users (mode {mode & 0o7777:o}); the crops in it "
                  "are written 0600, but consider `chmod 700` on it", file=sys.stderr)


def save_crop(root: str | Path, name: str, crop: np.ndarray, modality: str, tag: str = "") -> Path:
    """Write one crop as DIR/<name>/<modality>_<tag>.png with mode 0600 (folders 0700)."""
    if not NAME_RE.fullmatch(name):
        raise GalleryError(f"enrol name {name!r} must be letters, digits, '_', '-' or '.' (max 64)")
    folder = Path(root) / name
    _private_dir(Path(root))
    _private_dir(folder)
    path = folder / f"{modality}_{tag or time.strftime('%Y%m%d-%H%M%S')}.png"
    try:  # private: a new file each time, so an old one's mode never carries over
        return write_image(path, crop, private=True)
    except ValueError:
        raise GalleryError(f"cannot encode a crop of shape {crop.shape}") from None


class Gallery:
    """Embeddings of enrolled crops; `identify` names an embedding when a crop is close enough."""

    def __init__(self, root: str | Path, embedder: Any, threshold: float = 0.5, enrolling: bool = False) -> None:
        """`enrolling`: the run adds crops, so the gallery may be missing or empty yet; otherwise it must name
        someone (a mistyped path would leave every track nameless without a word)."""
        self.root, self.threshold = Path(root), threshold
        self.names: list[str] = []
        self.embeddings = np.zeros((0, 0), np.float32)
        if self.root.exists() and not self.root.is_dir():
            raise GalleryError(f"--gallery {self.root} is not a folder (expected DIR/<name>/*.png)")
        crops: dict[str, tuple[list[np.ndarray], list[str]]] = {"rgb": ([], []), "ir": ([], [])}
        unreadable = []
        for path in sorted(self.root.glob("*/*")):
            if path.suffix.lower() not in EXTS:
                continue
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                unreadable.append(path)  # skipped: enrolment can replace it
                continue
            images, names = crops[crop_modality(path, image)]
            images.append(image)
            names.append(path.parent.name)
        blocks = []
        for modality, (images, names) in crops.items():
            if images:
                blocks.append(np.asarray(embedder.embed(images, modality), np.float32))
                self.names += names
        if blocks:
            self.embeddings = np.concatenate(blocks)
        if unreadable:
            print(f"warning: {len(unreadable)} gallery crop(s) could not be read and were skipped, e.g. "
                  f"{unreadable[0]}", file=sys.stderr)
        if not self.names and not enrolling:
            state = "not found" if not self.root.exists() else "holds no readable crops"
            raise GalleryError(f"--gallery {self.root} {state}: expected DIR/<name>/*.png; enrol people first "
                               "(hicmd stream --rgb CAM --ir CAM --gallery DIR --enroll NAME)")

    def __len__(self) -> int:
        return len(self.names)

    def identify(self, embedding: np.ndarray) -> tuple[str | None, float | None]:
        """(name, cosine distance) of the nearest enrolled person, or (None, distance) beyond the threshold."""
        if not self.names:
            return None, None
        dist = 1.0 - self.embeddings @ np.asarray(embedding, np.float32)
        best = int(np.argmin(dist))
        return (self.names[best] if dist[best] <= self.threshold else None), float(dist[best])
