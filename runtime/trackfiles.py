"""`--save-tracks DIR`: what each camera's tracker saw, in MOTChallenge text, for scoring (hicmd score). Torch-free.

DIR/<cam>.txt holds per-camera track ids; DIR/<cam>_global.txt the same boxes with the global id shown at that
frame (a matched RGB and IR person share one), which the cross-camera identity metrics score. Rows are flushed line
by line, so a killed run leaves whole rows up to its last frame.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, Iterable

from .track import Track

__all__ = ["TrackFiles"]


class TrackFiles:
    def __init__(self, folder: str | Path, cameras: Iterable[str]) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.files: dict[str, IO[str]] = {name: open(folder / f"{name}.txt", "w", buffering=1)  # noqa: SIM115
                                          for cam in cameras for name in (cam, f"{cam}_global")}

    def write(self, camera: str, frame: int, tracks: Iterable[Track]) -> None:
        for tr in tracks:
            if tr.visible:
                x1, y1, x2, y2 = (float(v) for v in tr.box)
                row = f"{x1:.1f},{y1:.1f},{x2 - x1:.1f},{y2 - y1:.1f},{tr.score:.3f},-1,-1,-1\n"
                self.files[camera].write(f"{frame},{tr.id},{row}")
                self.files[f"{camera}_global"].write(f"{frame},{tr.gid},{row}")

    def close(self) -> None:
        for out in self.files.values():
            out.close()
