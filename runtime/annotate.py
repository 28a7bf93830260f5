"""Draw tracks on frames, put RGB and IR side by side, write a video a browser plays / show a window. Torch-free."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Iterable

import cv2
import numpy as np

from .track import Track

__all__ = ["draw_tracks", "side_by_side", "VideoSink", "gid_colour", "CODECS"]

# Codecs to try per container, best first. Browsers play VP9 in MP4 and WebM and H.264 in MP4. pip's OpenCV wheels
# bundle an FFmpeg with libvpx (VP9) but no H.264 encoder (x264 is GPL, OpenH264 is not bundled), so VP9 comes first;
# an OpenCV built against a system FFmpeg or GStreamer (JetPack) may only have H.264. mp4v (MPEG-4 Part 2) is the
# last resort: it always works but browsers refuse it.
CODECS = {".mp4": ("vp09", "avc1", "mp4v"), ".webm": ("VP90", "VP80"), ".mkv": ("VP90", "avc1", "XVID"),
          ".avi": ("MJPG", "XVID")}
log = logging.getLogger("hicmd.runtime")


def gid_colour(gid: int) -> tuple[int, int, int]:
    """A stable, well-spread BGR colour per global id (golden-ratio hue steps)."""
    hue = int((gid * 0.618034 % 1.0) * 179)
    bgr = cv2.cvtColor(np.uint8([[[hue, 200, 255]]]), cv2.COLOR_HSV2BGR)[0, 0]
    return int(bgr[0]), int(bgr[1]), int(bgr[2])


def draw_tracks(image: np.ndarray, tracks: Iterable[Track], distances: dict[int, float] | None = None,
                height: int = 0) -> np.ndarray:
    """A BGR copy of `image` (resized to `height`) with each visible track's box, global id, name and distance."""
    out = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image.copy()
    factor = 1.0
    if height and height != out.shape[0]:  # draw after resizing so both panels get the same text size
        factor = height / out.shape[0]
        out = cv2.resize(out, (max(1, round(out.shape[1] * factor)), height))
    scale = max(0.35, out.shape[0] / 900)
    for track in tracks:
        if not track.visible:
            continue
        x1, y1, x2, y2 = (int(round(v * factor)) for v in track.box)
        matched = track.gid != track.own_gid or (distances or {}).get(track.id) is not None
        colour = gid_colour(track.gid)
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, 2 if matched else 1)
        label = f"#{track.gid}"
        if track.name:
            label += f" {track.name}"
        if distances and track.id in distances:
            label += f" d={distances[track.id]:.2f}"
        cv2.putText(out, label, (x1, max(10, y1 - 4)), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)
    return out


def side_by_side(rgb: np.ndarray | None, ir: np.ndarray | None, height: int = 0) -> np.ndarray:
    """RGB left, IR right, both scaled to one height (the RGB frame's unless `height` is given)."""
    panels = [p for p in (rgb, ir) if p is not None]
    height = height or panels[0].shape[0]
    scaled = [cv2.resize(p, (max(1, round(p.shape[1] * height / p.shape[0])), height)) for p in panels]
    return np.hstack(scaled)


class VideoSink:
    """VideoWriter opened on the first frame with the first codec of CODECS that this OpenCV can encode (`codec`
    says which); later frames are resized to the first frame's size.

    Frames go to a hidden temporary file beside the target, renamed over it only once the video is finished
    (its index written): a crash leaves the previous video, never a half-written one. The file is private (0600):
    it shows the people watched.
    """

    def __init__(self, path: str | Path, fps: float) -> None:
        self.path, self.fps = Path(path), fps
        if self.path.suffix.lower() not in CODECS:
            raise ValueError(f"--save {self.path}: use a .mp4 or .webm file (browsers play both; also .mkv, .avi)")
        self.partial = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        self.writer: cv2.VideoWriter | None = None
        self.size: tuple[int, int] | None = None
        self.codec: str | None = None
        self.frames = 0

    def _open(self) -> None:
        # the video shows people's faces and bodies: private (0600) like a gallery, whatever the umask; created
        # here first so the encoder (which keeps an existing file's mode) writes into it, and so a folder that
        # cannot be written to says so instead of looking like a missing codec
        try:
            os.close(os.open(self.partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
            os.chmod(self.partial, 0o600)
        except OSError as exc:  # named as the user gave it, not as the hidden temporary
            raise OSError(exc.errno, f"--save cannot write there ({exc.strerror})", str(self.path)) from None
        for codec in CODECS[self.path.suffix.lower()]:
            writer = cv2.VideoWriter(str(self.partial), cv2.VideoWriter_fourcc(*codec), self.fps, self.size)
            if writer.isOpened():
                self.writer, self.codec = writer, codec
                if codec == "mp4v":
                    log.warning("this OpenCV has neither VP9 nor H.264: %s is MPEG-4 Part 2, which browsers do not "
                                "play (save to .webm, or convert with ffmpeg -c:v libvpx-vp9)", self.path)
                return
            writer.release()
        codecs = ", ".join(CODECS[self.path.suffix.lower()])
        self.partial.unlink(missing_ok=True)
        raise OSError(f"cannot write {self.path}: this OpenCV encodes none of {codecs}")

    def write(self, image: np.ndarray) -> None:
        if self.writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.size = (image.shape[1] // 2 * 2, image.shape[0] // 2 * 2)  # even sizes keep encoders happy
            self._open()
        if (image.shape[1], image.shape[0]) != self.size:
            image = cv2.resize(image, self.size)
        self.writer.write(image)
        self.frames += 1

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()
            self.writer = None
            os.replace(self.partial, self.path)
