"""How the bench times things: warm up, then run until enough runs or enough seconds; latency percentiles."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

__all__ = ["TimingPolicy", "FULL", "QUICK", "Latency", "time_runs", "latency_stats", "cosine_min", "timed_step"]


@dataclass(frozen=True)
class TimingPolicy:
    """Warm up, then time until `min_runs` runs or `min_seconds` have passed (but never fewer than `floor_runs`)."""

    warmup: int = 3
    min_runs: int = 100
    min_seconds: float = 10.0
    floor_runs: int = 5

    def describe(self) -> str:
        return (f"warm-up {self.warmup}, then until {self.min_runs} runs or {self.min_seconds:g} s "
                f"(at least {self.floor_runs} runs)")


FULL = TimingPolicy()
QUICK = TimingPolicy(warmup=1, min_runs=20, min_seconds=2.0, floor_runs=3)


@dataclass(frozen=True)
class Latency:
    """Latency of one call per batch (ms) and the throughput over all timed runs."""

    runs: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    images_per_s: float


def time_runs(fn: Callable[[], Any], policy: TimingPolicy,
              clock: Callable[[], float] = time.perf_counter) -> tuple[list[float], Any]:
    """Durations (s) of the timed calls of `fn` and the output of the first warm-up call (or the first timed one)."""
    output = None
    for i in range(policy.warmup):
        out = fn()
        output = out if i == 0 else output
    times: list[float] = []
    start = clock()
    while True:
        t0 = clock()
        out = fn()
        times.append(clock() - t0)
        output = out if output is None else output
        runs, elapsed = len(times), clock() - start
        if runs >= policy.min_runs or (elapsed >= policy.min_seconds and runs >= policy.floor_runs):
            return times, output


def latency_stats(times_s: list[float] | np.ndarray, batch: int) -> Latency:
    """p50/p90/p99/mean latency in ms per batch, and images/s over all the runs (batch * runs / total time)."""
    t = np.asarray(times_s, dtype=np.float64)
    if t.size == 0 or batch < 1:
        raise ValueError("latency_stats needs at least one timing and a batch of at least 1")
    p50, p90, p99 = np.percentile(t, [50, 90, 99]) * 1000.0
    return Latency(int(t.size), float(p50), float(p90), float(p99), float(t.mean() * 1000.0),
                   float(batch * t.size / t.sum()))


def cosine_min(a: np.ndarray, b: np.ndarray) -> float:
    """Smallest row-wise cosine similarity between two (N, D) arrays."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    return float(np.min((a * b).sum(axis=1) / np.maximum(na * nb, 1e-12)))


def timed_step(label: str, fn: Callable[[], Any], log: Callable[[str], None]) -> Any:
    """Run `fn`, then log how long it took (export, peak, clip writing)."""
    start = time.perf_counter()
    out = fn()
    log(f"{label}: {time.perf_counter() - start:.1f} s")
    return out
