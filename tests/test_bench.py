"""hicmd bench: timing math on synthetic timings, ratios and targets, the report writers, and one quick end-to-end
run in a subprocess. No assertion is about how fast anything is."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hicmd.bench.embedder import add_ratios
from hicmd.bench.report import write_json, write_markdown, write_plot
from hicmd.bench.rows import BenchResult, EmbedderRow, Peak, StreamRow, TrainRow
from hicmd.bench.targets import targets
from hicmd.bench.timing import TimingPolicy, cosine_min, latency_stats, time_runs

HICMD = [sys.executable, "-m", "hicmd"]


class FakeClock:
    """Each call to the timed function advances time by the next step; the clock reads that time."""

    def __init__(self, steps: list[float]):
        self.now, self.steps = 0.0, iter(steps)

    def __call__(self) -> float:
        return self.now

    def work(self) -> str:
        self.now += next(self.steps)
        return "out"


def test_time_runs_stops_at_min_runs():
    clock = FakeClock([0.001] * 1000)
    times, out = time_runs(clock.work, TimingPolicy(warmup=2, min_runs=7, min_seconds=100.0, floor_runs=3), clock)
    assert len(times) == 7 and out == "out"
    assert times == pytest.approx([0.001] * 7)


def test_time_runs_stops_at_min_seconds_but_not_before_floor():
    clock = FakeClock([1.0] * 100)  # 1 s per call: 2 s are reached after 2 runs, but the floor asks for 3
    times, _ = time_runs(clock.work, TimingPolicy(warmup=0, min_runs=50, min_seconds=2.0, floor_runs=3), clock)
    assert len(times) == 3
    clock = FakeClock([0.5] * 100)
    times, _ = time_runs(clock.work, TimingPolicy(warmup=0, min_runs=50, min_seconds=2.0, floor_runs=1), clock)
    assert len(times) == 4  # 4 x 0.5 s reach 2 s


def test_latency_stats_percentiles_and_throughput():
    times = np.arange(1, 101) / 1000.0  # 1..100 ms
    stats = latency_stats(np.random.default_rng(0).permutation(times), batch=8)
    assert stats.runs == 100
    assert stats.p50_ms == pytest.approx(50.5)
    assert stats.p90_ms == pytest.approx(90.1)
    assert stats.p99_ms == pytest.approx(99.01)
    assert stats.mean_ms == pytest.approx(50.5)
    assert stats.images_per_s == pytest.approx(8 * 100 / times.sum())
    with pytest.raises(ValueError):
        latency_stats([], batch=1)


def test_cosine_min():
    a = np.array([[1.0, 0.0], [0.0, 2.0]])
    assert cosine_min(a, a) == pytest.approx(1.0)
    assert cosine_min(a, np.array([[1.0, 0.0], [1.0, 1.0]])) == pytest.approx(1 / np.sqrt(2))


def _row(backend: str, variant: str, batch: int, p50: float, precision: str = "fp32", config: str = "paper",
         **extra: float) -> EmbedderRow:
    fields = dict(runs=10, p50_ms=p50, p90_ms=p50 * 1.1, p99_ms=p50 * 1.2, mean_ms=p50,
                  images_per_s=1000.0 * batch / p50, gflops=10.0, peak_fraction=0.5, parity_cosine=0.99999)
    return EmbedderRow(config, backend, precision, variant, "cpu", batch, **{**fields, **extra})


def _stream(ratio: float) -> StreamRow:
    return StreamRow("paper", "clip", 20, 2.1, 9.5, 2.0, 40, 100.0, 10.0, ratio,
                     {"embed": {"p50": 80.0, "p99": 90.0, "n": 5}}, {}, "onnxruntime fp32")


def test_ratios_and_targets():
    rows = [_row("torch", "eager", 1, 100.0), _row("onnxruntime", "default", 1, 40.0),
            _row("onnxruntime", "default", 8, 300.0, peak_fraction=0.55), _row("torch", "eager", 8, 500.0),
            _row("onnxruntime", "default", 1, 10.0, config="tiny"),
            EmbedderRow.skipped("paper", "tensorrt", "fp16", "default", "no engine")]
    add_ratios(rows)
    assert rows[1].speedup_vs_eager == pytest.approx(2.5)
    assert rows[2].speedup_vs_eager == pytest.approx(500 / 300)
    assert rows[4].speedup_vs_eager is None  # no tiny eager row to compare with
    result = targets(rows, [_stream(0.95)])
    # sgemm share, ORT vs eager, stream; INT8 vs FP32 at 1 and 8; fastest CPU path vs eager; OpenVINO vs ORT
    assert [t.met for t in result] == [False, True, True, None, None, False, None]
    assert result[0].value == pytest.approx(0.55)
    assert [t.met for t in targets(rows[4:], [])] == [None] * 7
    int8 = [_row("onnxruntime", "default", 1, 16.0, precision="int8"),
            _row("onnxruntime", "default", 8, 200.0, precision="int8"), _row("openvino", "default", 1, 20.0)]
    add_ratios(rows + int8)
    result = targets(rows + int8, [])
    assert result[3].value == pytest.approx(40 / 16) and result[3].met  # ORT INT8 2.5x ORT FP32 at batch 1
    assert result[4].value == pytest.approx(300 / 200) and not result[4].met
    assert result[5].value == pytest.approx(100 / 16)  # the fastest CPU path (INT8) vs torch eager
    assert result[6].value == pytest.approx(20 / 16)  # OpenVINO's best is slower than ONNX Runtime's


def _result(rows: list[EmbedderRow]) -> BenchResult:
    return BenchResult(
        created="now", quick=True, threads=2, policy="warm-up 1", weights="random",
        machine={"cpu": "Test CPU", "physical_cores": 2, "logical_cores": 2, "gpu": None, "load_average": [1.0],
                 "versions": {"numpy": "2"}},
        peaks={"fp32": Peak(100.0, 2048, 2, 0.17, {"torch.mm": 100.0}, "torch.mm"), "int8": None, "bf16": None},
        configs={}, embedder=rows, stream=[_stream(0.95)],
        train=[TrainRow("tiny", "cpu", 2, 2, 1.5, 0.66, 12, 8.0)], targets=targets(rows, []))


def test_report_writers(tmp_path: Path):
    rows = [_row("torch", "eager", b, 10.0 * b) for b in (1, 8)] + \
           [_row("onnxruntime", "default", b, 4.0 * b, stages_ms={"compute": 1.0}) for b in (1, 8)] + \
           [EmbedderRow.skipped("paper", "tensorrt", "fp16", "default", "no fp16 engine")]
    add_ratios(rows)
    result = _result(rows)
    data = json.loads(write_json(result, tmp_path / "bench.json").read_text())
    assert [r["p50_ms"] for r in data["embedder"] if r["status"] == "ok"] == [10.0, 80.0, 4.0, 32.0]
    assert data["peak"]["gflops"] == 100.0 and data["stream"][0]["ratio"] == 0.95
    text = write_markdown(result, tmp_path / "bench.md").read_text()
    table = [line for line in text.split("## Stream")[0].splitlines() if line.startswith("| paper")]
    assert len(table) == 5 and "skipped: no fp16 engine" in table[-1]
    assert "| paper | onnxruntime | fp32 | default | cpu | 8 | 10 | 32.00 |" in text
    assert "2.50" in text  # 10 ms eager / 4 ms ORT at batch 1
    assert "## Stream" in text and "95%" in text and "## Training step" in text
    png = write_plot(result, tmp_path / "bench.png")
    assert png is not None and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert write_plot(_result(rows[-1:]), tmp_path / "none.png") is None  # nothing measured, no picture


def test_bench_rejects_bad_options(tmp_path: Path):
    run = subprocess.run([*HICMD, "bench", "--batch", "0,x", "--out", str(tmp_path)], capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 2 and "--batch" in run.stderr and "Traceback" not in run.stderr
    run = subprocess.run([*HICMD, "bench", "--backend", "cuda"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "--backend" in run.stderr


@pytest.mark.slow  # builds and runs the whole tiny model (decoder, discriminators) for summarise(): 4-15 s
def test_macs_match_the_model_summary():
    from hicmd.bench.subjects import _macs
    from hicmd.presets import PRESETS
    from hicmd.model import HiCMD
    from hicmd.model.summary import summarise

    cfg = PRESETS["tiny"].model
    assert _macs(HiCMD(cfg, 206).eval()) == summarise(cfg)[-1].macs


def test_bench_end_to_end(tmp_path: Path):
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    run = subprocess.run([*HICMD, "bench", "--quick", "--config", "tiny", "--batch", "1", "--backend",
                          "torch,onnxruntime", "--out", str(out)], capture_output=True, text=True, timeout=300,
                         env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads((out / "bench.json").read_text())
    assert result["peak"]["gflops"] > 0 and result["configs"]["tiny"]["macs_per_image"] > 0
    ok = {(r["backend"], r["precision"], r["variant"]): r for r in result["embedder"] if r["status"] == "ok"}
    assert set(ok) >= {("torch", "fp32", "eager"), ("torch", "fp32", "channels_last"),
                       ("onnxruntime", "fp32", "default"), ("onnxruntime", "fp16", "default")}
    for row in ok.values():
        assert row["batch"] == 1 and row["runs"] >= 3
        assert row["p50_ms"] <= row["p90_ms"] <= row["p99_ms"]
        assert row["speedup_vs_eager"] > 0 and row["gflops"] > 0 and row["peak_fraction"] > 0
        assert row["gflops"] == pytest.approx(2 * result["configs"]["tiny"]["macs_per_image"]
                                              * row["images_per_s"] / 1e9)
    assert ok["torch", "fp32", "eager"]["speedup_vs_eager"] == pytest.approx(1.0)
    assert ok["onnxruntime", "fp32", "default"]["parity_cosine"] >= 0.9999
    assert ok["onnxruntime", "fp16", "default"]["parity_cosine"] > 0.99
    skipped = [r for r in result["embedder"] if r["status"].startswith("skipped")]
    assert any(r["variant"] == "compile" for r in skipped)
    assert (out / "bench.md").is_file() and (out / "bench.png").is_file()
    assert "random" in result["weights"]
