"""Soak: 10,000 steps from looping file sources with flat memory and bounded queues."""

from __future__ import annotations

import threading
import time

import pytest

from hicmd.runtime.stream import Pipeline, StreamOptions

from testkit.stream import FakeEmbedder, make_clip

psutil = pytest.importorskip("psutil")


@pytest.mark.slow
def test_soak_10k_frames_flat_memory(tmp_path):
    clip = make_clip(tmp_path / "clip", seconds=6.0)
    opts = StreamOptions(rgb=str(clip / "rgb.mp4"), ir=str(clip / "ir.mp4"), detections_rgb=str(clip / "det_rgb.txt"),
                         detections_ir=str(clip / "det_ir.txt"), events=str(tmp_path / "events.jsonl"),
                         loop=True, max_frames=10_000, stats_every=1.0)
    pipeline = Pipeline(opts, FakeEmbedder(), None, None)
    process = psutil.Process()
    samples: list[tuple[int, int]] = []  # (steps, rss)
    sizes = {"capture": 0, "pairer": 0, "tracks": 0, "matcher": 0}
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.05):
            samples.append((pipeline.steps, process.memory_info().rss))
            sizes["capture"] = max(sizes["capture"], *(len(c.buffer) for c in pipeline.captures.values()))
            sizes["pairer"] = max(sizes["pairer"], *(len(b) for b in pipeline.pairer.buffers.values()))
            sizes["tracks"] = max(sizes["tracks"], *(len(t.tracks) for t in pipeline.trackers.values()))
            sizes["matcher"] = max(sizes["matcher"], len(pipeline.matcher.matcher._streak) +
                                   len(pipeline.matcher.matcher._seen) + len(pipeline.matcher.history._points) +
                                   len(pipeline.matcher.alone.pairs))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    start = time.monotonic()
    summary = pipeline.run(threading.Event())
    done.set()
    watcher.join(timeout=5)
    elapsed = time.monotonic() - start
    assert summary.steps == 10_000 and not summary.interrupted
    assert summary.frames["rgb"]["processed"] == 10_000 and summary.frames["rgb"]["dropped"] == 0
    assert summary.matches > 50  # people keep coming back with every loop and are matched again
    warm = [rss for steps, rss in samples if 1_500 <= steps < 2_500]
    late = [rss for steps, rss in samples if steps >= 2_500]
    assert warm and late, f"too few samples ({len(samples)}) in {elapsed:.1f} s"
    growth_mb = (max(late) - min(warm)) / 2**20
    print(f"soak: {summary.steps} steps in {elapsed:.1f} s, RSS growth after warm-up {growth_mb:.1f} MB, "
          f"max sizes {sizes}")
    assert growth_mb < 20, f"RSS grew {growth_mb:.1f} MB"
    assert sizes["capture"] <= 4 and sizes["pairer"] <= 16 and sizes["tracks"] <= 20 and sizes["matcher"] <= 100
