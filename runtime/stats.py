"""Per-stage latency percentiles and per-camera frame rates for the periodic `stats` event. Torch-free."""

from __future__ import annotations

import threading
import time
from collections import deque
from contextlib import contextmanager
from typing import Iterator

import numpy as np

__all__ = ["StageTimes", "RateMeter"]


class StageTimes:
    """Bounded windows of per-stage durations (ms); p50/p99 over the newest `window` samples of each stage."""

    def __init__(self, window: int = 2048) -> None:
        self.window = window
        self._samples: dict[str, deque[float]] = {}
        self._lock = threading.Lock()  # capture threads add "capture" samples concurrently

    def add(self, stage: str, ms: float) -> None:
        with self._lock:
            self._samples.setdefault(stage, deque(maxlen=self.window)).append(ms)

    @contextmanager
    def time(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(stage, (time.perf_counter() - start) * 1000.0)

    def summary(self) -> dict[str, dict[str, float]]:
        with self._lock:
            data = {k: np.asarray(v, dtype=np.float64) for k, v in self._samples.items() if v}
        return {k: {"p50": round(float(np.percentile(v, 50)), 3), "p99": round(float(np.percentile(v, 99)), 3),
                    "n": int(v.size)} for k, v in data.items()}


class RateMeter:
    """Turns monotonically growing counters into per-second rates between two `rates()` calls."""

    def __init__(self) -> None:
        self._last: dict[str, int] = {}
        self._t = time.monotonic()

    def rates(self, counters: dict[str, int]) -> dict[str, float]:
        now = time.monotonic()
        dt = max(now - self._t, 1e-6)
        out = {k: round((v - self._last.get(k, 0)) / dt, 2) for k, v in counters.items()}
        self._last, self._t = dict(counters), now
        return out
