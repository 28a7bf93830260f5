"""One capture thread per camera: grab, timestamp, validate, hand over; reconnect live sources with backoff.

Two frame policies:
- realtime (live sources, or files with --realtime): a one-slot buffer that keeps only the newest frame; every
  overwritten frame is counted as dropped, so latency never grows. Timestamps are time.monotonic() at grab.
- in order (files by default): a small bounded queue that blocks the reader instead of dropping, so every frame is
  processed in order and results are deterministic. Timestamps are media time ((index - 1) / fps).

Torch-free.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from .sources import EndOfStream, FrameReader, SourceError, SourceSpec, y16_to_u8
from .stats import StageTimes

__all__ = ["Frame", "FrameBuffer", "CaptureThread", "prepare_frame"]


@dataclass
class Frame:
    camera: str  # "rgb" | "ir"
    index: int  # 1-based position in the source (counts corrupt frames too, so det files stay aligned)
    t: float  # seconds: monotonic at grab (realtime) or media time (in order)
    image: np.ndarray  # BGR uint8 (rgb) / BGR or 2-D gray uint8 (ir)


class FrameBuffer:
    """Bounded frame hand-over between a capture thread and the pipeline."""

    def __init__(self, capacity: int, drop_oldest: bool) -> None:
        self.capacity, self.drop_oldest = capacity, drop_oldest
        self._items: deque[Frame] = deque()
        self._cond = threading.Condition()
        self.dropped = 0

    def put(self, frame: Frame, stop: threading.Event) -> None:
        with self._cond:
            if self.drop_oldest:
                while len(self._items) >= self.capacity:
                    self._items.popleft()
                    self.dropped += 1
            else:
                while len(self._items) >= self.capacity and not stop.is_set():
                    self._cond.wait(0.05)
                if stop.is_set():
                    return
            self._items.append(frame)
            self._cond.notify_all()

    def get(self, timeout: float) -> Frame | None:
        with self._cond:
            if not self._items:
                self._cond.wait(timeout)
            if not self._items:
                return None
            frame = self._items.popleft()
            self._cond.notify_all()
            return frame

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def __len__(self) -> int:
        return len(self._items)


def prepare_frame(image: object, camera: str, ir_range: tuple[float, float],
                  expected: tuple[int, ...] | None) -> np.ndarray | None:
    """Validate one decoded image and bring it to uint8; None when it is unusable (counted as corrupt)."""
    if not isinstance(image, np.ndarray) or image.ndim not in (2, 3) or image.size == 0:
        return None
    if image.ndim == 3 and image.shape[2] not in (1, 3, 4):
        return None
    if image.dtype == np.uint16:  # thermal Y16 (centi-Kelvin): fixed temperature window
        image = y16_to_u8(image if image.ndim == 2 else image[..., 0], ir_range)
    elif image.dtype != np.uint8:
        return None
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if camera == "rgb" and image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if expected is not None and image.shape != expected:
        return None  # a frame of another size mid-stream is a broken frame, not a new camera
    return image


class CaptureThread(threading.Thread):
    """Reads one source into a FrameBuffer. Live sources reconnect with exponential backoff; files end."""

    def __init__(self, camera: str, spec: SourceSpec, opener: Callable[[], FrameReader], *, realtime: bool,
                 ir_range: tuple[float, float] = (20.0, 40.0), on_event: Callable[[dict], None] | None = None,
                 times: StageTimes | None = None, queue_size: int = 4, backoff: tuple[float, float] = (0.05, 0.5),
                 stall_s: float = 0.8, down_after_s: float = 1.5, reopen_after_s: float = 5.0,
                 fps: float | None = None, loop: bool = False) -> None:
        super().__init__(name=f"capture-{camera}", daemon=True)
        self.camera, self.spec, self.opener, self.realtime = camera, spec, opener, realtime
        self.ir_range, self.on_event, self.times = ir_range, on_event or (lambda e: None), times
        self.backoff, self.stall_s, self.loop = backoff, stall_s, loop
        self.down_after_s, self.reopen_after_s = down_after_s, reopen_after_s
        self.buffer = FrameBuffer(1 if realtime else queue_size, drop_oldest=realtime)
        self.stop_event = threading.Event()
        self.finished = threading.Event()
        self.error: Exception | None = None
        self.grabbed = self.corrupt = self.reconnects = 0  # reconnects: outages recovered from
        self.last_t = 0.0  # timestamp of the newest frame handed over
        self.reader: FrameReader | None = opener()  # first open in the caller: a bad source fails fast and clearly
        self.fps = fps or self.reader.fps or 30.0  # media clock of files played in order; pacing

    # -------------------------------------------------------------- consumer side

    @property
    def dropped(self) -> int:
        return self.buffer.dropped

    @property
    def exhausted(self) -> bool:
        """The source ended (or failed for good) and every frame it delivered has been taken."""
        return self.finished.is_set() and len(self.buffer) == 0

    def get(self, timeout: float) -> Frame | None:
        return self.buffer.get(timeout)

    def stop(self) -> None:
        self.stop_event.set()
        self.buffer.wake()

    # -------------------------------------------------------------- producer side

    def run(self) -> None:
        try:
            self._loop()
        except Exception as exc:  # never let a capture thread die silently: the pipeline reports it
            self.error = exc
        finally:
            if self.reader is not None:
                self.reader.close()
            self.finished.set()
            self.buffer.wake()

    def _loop(self) -> None:
        index, count, expected, instant = 0, 0, None, 0
        delay, down_since = self.backoff[0], None
        start = last_good = opened = time.monotonic()
        while not self.stop_event.is_set():
            if self.reader is None:  # live source that went down: reopen with exponential backoff
                try:
                    self.reader = self.opener()
                except SourceError:
                    self.stop_event.wait(delay)
                    delay = min(delay * 2, self.backoff[1])
                    continue
                expected, delay, opened = None, self.backoff[0], time.monotonic()
            t_grab = time.monotonic()
            try:
                image = self.reader.read()
            except EndOfStream:
                if not self.loop or index == 0:
                    return
                self.reader.close()  # --loop: play the file again; frame indices restart, time goes on
                self.reader, index = self.opener(), 0
                continue
            except cv2.error:
                image = None
            now = time.monotonic()
            if self.times is not None:
                self.times.add("capture", (now - t_grab) * 1000.0)
            if self.spec.live and (image is None or now - t_grab > self.stall_s):
                # nothing, or a frame that only came at the read timeout: the source is not delivering
                instant = instant + 1 if now - t_grab < 0.05 else 0
                if down_since is None and now - last_good > self.down_after_s:
                    down_since = now
                    self.on_event({"event": "source_down", "camera": self.camera, "source": self.spec.shown,
                                   "reason": f"no frame for {now - last_good:.1f} s"})
                # A reader that waits for data keeps listening (a UDP stream that comes back resumes at once);
                # one that fails instantly (closed connection, broken decoder), or listens in vain, is reopened.
                if down_since is not None and (instant >= 20 or now - max(down_since, opened) > self.reopen_after_s):
                    self.reader.close()
                    self.reader, instant = None, 0
                elif instant:
                    self.stop_event.wait(0.01)
                continue
            instant = 0
            index += 1
            count += 1  # frame positions since the start (loops included): the media clock
            prepared = prepare_frame(image, self.camera, self.ir_range, expected)
            if prepared is None:
                self.corrupt += 1
                continue
            if down_since is not None:  # frames flow again: that, not a successful open, is "up"
                self.reconnects += 1
                # the outage is what the user lost: from the last good frame, not from the source_down event
                self.on_event({"event": "source_up", "camera": self.camera, "source": self.spec.shown,
                               "down_s": round(now - last_good, 3)})
                down_since = None
            expected, last_good = prepared.shape, now
            self.grabbed += 1
            if self.realtime and not self.spec.live:  # a file played in real time: pace to its frame rate
                self.stop_event.wait(max(0.0, start + (count - 1) / self.fps - time.monotonic()))
                t_grab = time.monotonic()
            t = t_grab if self.realtime else (count - 1) / self.fps
            self.last_t = t
            self.buffer.put(Frame(self.camera, index, t, prepared), self.stop_event)
