"""Which ONNX Runtime session settings make the embedder fastest on this CPU?

Times one embedder graph under several SessionOptions (optimisation level, intra-op threads, spinning, execution
mode) with the bench's timing policy, and prints p50 latency and % of the sgemm peak per variant; then two sessions
(the RGB and the IR graph, or the graph twice) run one after the other, as the stream runs its embedders, with their
idle threads spinning and sleeping:

    .venv/bin/python benchmarks/ort_session.py --config paper --batch 1,8 [--quick] [--onnx rgb.onnx]

Without --onnx a random-initialised model of --config is exported to a temp folder (weights do not change latency).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort

from hicmd.bench.machine import default_threads
from hicmd.bench.peaks import sgemm_peak
from hicmd.bench.subjects import random_subject
from hicmd.bench.timing import FULL, QUICK, latency_stats, time_runs
from hicmd.presets import PRESETS
from hicmd.runtime.backends.onnxruntime import ALLOW_SPINNING

LEVELS = {"basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
          "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
          "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}


def variants(threads: int) -> dict[str, dict]:
    """name -> settings; 'runtime' is what hicmd.runtime's OnnxRuntimeBackend uses."""
    return {
        "runtime (all, intra=cores, inter=1, sleeping)": {"level": "all", "intra": threads, "spin": False},
        "ORT defaults (all, threads unset, spinning)": {"level": "all", "intra": None},
        "spinning": {"level": "all", "intra": threads},
        "extended": {"level": "extended", "intra": threads},
        "basic": {"level": "basic", "intra": threads},
        "intra=1": {"level": "all", "intra": 1},
        "parallel execution mode": {"level": "all", "intra": threads, "parallel": True},
    }


def session(path: Path, level: str, intra: int | None, spin: bool = True, parallel: bool = False):
    options = ort.SessionOptions()
    options.graph_optimization_level = LEVELS[level]
    if intra is not None:
        options.intra_op_num_threads = intra
        options.inter_op_num_threads = 1
    if not spin:
        options.add_session_config_entry(ALLOW_SPINNING, "0")
    if parallel:
        options.execution_mode = ort.ExecutionMode.ORT_PARALLEL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="paper", choices=sorted(PRESETS))
    parser.add_argument("--onnx", type=Path, help="embedder graph to time (default: random export of --config)")
    parser.add_argument("--batch", default="1,8")
    parser.add_argument("--threads", type=int, default=default_threads())
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    policy = QUICK if args.quick else FULL
    peak = sgemm_peak(args.threads).gflops
    with tempfile.TemporaryDirectory() as tmp:
        subject = random_subject(PRESETS[args.config], Path(tmp), fp16=False)
        path = args.onnx or Path(tmp) / "rgb.onnx"
        h, w = subject.cfg.model.height, subject.cfg.model.width
        print(f"{path.name} ({args.config}), {args.threads} threads, sgemm peak {peak:.1f} GFLOP/s")
        for batch in [int(b) for b in args.batch.split(",")]:
            images = np.random.default_rng(batch).integers(0, 256, (batch, h, w, 3), dtype=np.uint8)
            for name, settings in variants(args.threads).items():
                sess = session(path, **settings)
                times, _ = time_runs(lambda: sess.run(["embedding"], {"images": images}), policy)
                stats = latency_stats(times, batch)
                gflops = 2 * subject.macs * stats.images_per_s / 1e9
                print(f"batch {batch:3d}  {name:46s} p50 {stats.p50_ms:9.2f} ms  "
                      f"{stats.images_per_s:7.2f} img/s  {gflops:6.1f} GFLOP/s  {gflops / peak:5.0%} of peak")
            ir = path.with_name("ir.onnx")  # a random export has the RGB graph only: then it runs twice
            for spin in (True, False):
                pair = [session(p, "all", args.threads, spin=spin) for p in (path, ir if ir.is_file() else path)]
                times, _ = time_runs(lambda: [graph.run(["embedding"], {"images": images}) for graph in pair], policy)
                stats = latency_stats(times, batch)
                print(f"batch {batch:3d}  two sessions one after the other, {'spinning' if spin else 'sleeping':13s} "
                      f"p50 {stats.p50_ms:9.2f} ms for both")


if __name__ == "__main__":
    main()
