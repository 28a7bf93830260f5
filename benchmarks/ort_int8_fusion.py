"""ONNX Runtime INT8 vs FP32, side by side, with and without the Q/DQ placements of hicmd.export.int8_fusion.

    nice -n 10 .venv/bin/python benchmarks/ort_int8_fusion.py --config paper --rounds 5 [--threads 2]

A random-initialised model of --config (weights do not change latency), its FP32 graph and three INT8 graphs made
from it with the same calibration (16 random crops, max ranges, all-INT8, as `hicmd bench` makes them): as
`quantize_static` leaves it ("before"), with the ReLU outputs on zero point 0 ("relu"), and with the padding on
uint8 too ("relu+pad", what `hicmd export --int8` writes). All four sessions are timed in one process in
interleaved rounds (10 runs at batch 1, 3 at batch 8 per round), so a shared machine's load falls on all alike;
prints the p50 of the round medians, the fastest run, the ratio to FP32 and the cosine to FP32.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from hicmd.bench.subjects import random_subject
from hicmd.export.int8 import quantize_embedder
from hicmd.export.int8_fusion import pads_on_uint8, relu_outputs_on_zero_point_0
from hicmd.presets import PRESETS


def graphs(config: str, folder: Path) -> dict[str, Path]:
    subject = random_subject(PRESETS[config], folder, fp16=False)
    m = subject.cfg.model
    crops = np.random.default_rng(0).integers(0, 256, (16, m.height, m.width, 3), dtype=np.uint8)
    paths = {"fp32": folder / "rgb.onnx", "before": folder / "before.onnx", "relu": folder / "relu.onnx",
             "relu+pad": folder / "relu_pad.onnx"}
    model, _ = quantize_embedder(paths["fp32"], paths["before"], crops, "max", mixed=False, fuse=False)
    relu_outputs_on_zero_point_0(model)
    onnx.save(model, str(paths["relu"]))
    pads_on_uint8(model)
    onnx.save(model, str(paths["relu+pad"]))
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="paper", choices=sorted(PRESETS))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        paths = graphs(args.config, Path(tmp))
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = args.threads, 1
        sessions = {k: ort.InferenceSession(str(p), options, providers=["CPUExecutionProvider"])
                    for k, p in paths.items()}
        m = PRESETS[args.config].model
        print(f"{args.config}, {args.threads} threads, ONNX Runtime {ort.__version__}, load {os.getloadavg()[0]:.1f}")
        for batch, runs in ((1, 10), (8, 3)):
            x = np.random.default_rng(batch).integers(0, 256, (batch, m.height, m.width, 3), dtype=np.uint8)
            out = {k: s.run(["embedding"], {"images": x})[0] for k, s in sessions.items()}
            medians: dict[str, list[float]] = {k: [] for k in sessions}
            fastest = dict.fromkeys(sessions, np.inf)
            for _ in range(args.rounds):
                for k, s in sessions.items():
                    times = []
                    for _ in range(runs):
                        start = time.perf_counter()
                        s.run(["embedding"], {"images": x})
                        times.append((time.perf_counter() - start) * 1000)
                    medians[k].append(float(np.median(times)))
                    fastest[k] = min(fastest[k], *times)
            fp32 = np.median(medians["fp32"])
            for k in sessions:
                p50 = np.median(medians[k])
                a, b = out[k], out["fp32"]
                cosine = ((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)).min()
                print(f"batch {batch}  {k:9s} p50 {p50:7.1f} ms  fastest {fastest[k]:7.1f} ms  "
                      f"x FP32 {fp32 / p50:4.2f}  cosine {cosine:.5f}")
        print(f"load {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
