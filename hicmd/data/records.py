"""The dataset record every reader returns, and the one error type of the data layer."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hicmd.errors import HicmdError
from hicmd.modality import MODALITIES

__all__ = ["Record", "DataError", "MODALITIES"]



class DataError(HicmdError, ValueError):
    """A dataset folder, split file or image that cannot be used; the message names the path and what was expected.

    The CLI shows it as one line (a HicmdError); the trainer catches it to skip a corrupt image.
    """


@dataclass(frozen=True)
class Record:
    """One image of a person: where it is, who it is, which camera took it and in which modality."""

    path: Path
    pid: int
    camera: int
    modality: str  # "rgb" | "ir"

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise ValueError(f"Record.modality must be 'rgb' or 'ir', got {self.modality!r}")
