"""Pair RGB and IR frames by nearest timestamp within a tolerance. Torch-free.

Frames are released oldest first. The oldest buffered frame is decided once the other camera has delivered a frame
more than `tolerance` later (so no closer partner can still come), once the other camera has ended, or (live
sources) once it is older than `tolerance` on the wall clock. Its partner is the other camera's nearest buffered
frame within the tolerance; without one it is processed alone (cameras rarely share a frame rate).
"""

from __future__ import annotations

from collections import deque

from .capture import Frame

__all__ = ["Pairer", "Pair"]

Pair = tuple[Frame | None, Frame | None]  # (rgb, ir)
OTHER = {"rgb": "ir", "ir": "rgb"}


class Pairer:
    def __init__(self, tolerance: float, max_buffer: int = 16) -> None:
        self.tolerance, self.max_buffer = tolerance, max_buffer
        self.buffers: dict[str, deque[Frame]] = {"rgb": deque(), "ir": deque()}
        self.last_t: dict[str, float | None] = {"rgb": None, "ir": None}
        self.dropped = 0  # frames discarded because the buffer was full (live sources only)
        self.skews: deque[float] = deque(maxlen=512)  # |t_rgb - t_ir| of paired frames, seconds

    def push(self, frame: Frame) -> None:
        buffer = self.buffers[frame.camera]
        buffer.append(frame)
        self.last_t[frame.camera] = frame.t
        while len(buffer) > self.max_buffer:  # bounded: a stalled partner camera cannot grow memory
            buffer.popleft()
            self.dropped += 1

    def pop(self, now: float | None = None, ended: frozenset[str] | set[str] = frozenset()) -> list[Pair]:
        """Every pair that can be decided now (`now`: monotonic seconds for live sources, None for files)."""
        out: list[Pair] = []
        while True:
            heads = [(buf[0].t, cam != "rgb", cam) for cam, buf in self.buffers.items() if buf]
            if not heads:
                return out
            t_a, _, a = min(heads)
            b = OTHER[a]
            other_ahead = self.last_t[b] is not None and self.last_t[b] > t_a + self.tolerance
            if not (other_ahead or b in ended or (now is not None and now - t_a > self.tolerance)):
                return out
            frame = self.buffers[a].popleft()
            near = [f for f in self.buffers[b] if abs(f.t - t_a) <= self.tolerance]
            partner = min(near, key=lambda f: abs(f.t - t_a)) if near else None
            if partner is not None:
                self.buffers[b].remove(partner)
                self.skews.append(abs(partner.t - t_a))
            out.append((frame, partner) if a == "rgb" else (partner, frame))
