"""ONNX Runtime's two x86 INT8 kernel families on an export folder's INT8 graphs, side by side with FP32: U8S8 (the
default; without VNNI its AVX2 kernels add pairs of products in 16 bits and saturate) and U8U8
(`session.x64quantprecision=1`, what hicmd.runtime.cpu.int8_safe asks for on such CPUs).

    .venv/bin/python benchmarks/int8_kernels.py --model M [--threads 1] [--rounds 200]

M is a `hicmd export --int8` folder. The three sessions of each graph are timed in one process in interleaved rounds
(one run each per round), so a shared machine's load falls on all alike; prints the median ms per batch (1 and 8
random crops) and the cosine to FP32 (mean / min) on 32 SynthVI crops, with this CPU's flags. On a VNNI CPU both
families run VNNI kernels, and U8U8 is only slower.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from hicmd.export.parity import synthvi_crops
from hicmd.runtime.cpu import U8U8, cpu_info

KINDS = {"fp32": ("", False), "int8 U8S8": (".int8", False), "int8 U8U8": (".int8", True)}


def _session(path: Path, u8u8: bool, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    if u8u8:
        options.add_session_config_entry(*U8U8)
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _embed(session: ort.InferenceSession, images: np.ndarray) -> np.ndarray:
    out = session.run(["embedding"], {"images": images})[0]
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def measure(model: Path, threads: int, rounds: int) -> dict[str, dict[str, object]]:
    rows: dict[str, dict[str, object]] = {}
    for graph in ("rgb", "ir"):
        sessions = {kind: _session(model / f"{graph}{suffix}.onnx", u8u8, threads)
                    for kind, (suffix, u8u8) in KINDS.items()}
        height, width = sessions["fp32"].get_inputs()[0].shape[1:3]
        crops = synthvi_crops(height, width, 32).images[graph]
        reference = _embed(sessions["fp32"], crops)
        for batch in (1, 8):
            images = np.random.default_rng(batch).integers(0, 256, (batch, height, width, 3), dtype=np.uint8)
            times: dict[str, list[float]] = {kind: [] for kind in sessions}
            for session in sessions.values():  # warm-up
                for _ in range(5):
                    session.run(["embedding"], {"images": images})
            for _ in range(rounds):
                for kind, session in sessions.items():
                    start = time.perf_counter()
                    session.run(["embedding"], {"images": images})
                    times[kind].append(time.perf_counter() - start)
            rows[f"{graph} batch {batch}"] = {kind: round(1000 * float(np.median(t)), 2) for kind, t in times.items()}
        for kind, session in sessions.items():
            cosine = (reference * _embed(session, crops)).sum(1)
            rows.setdefault(f"{graph} cosine to fp32 (mean / min)", {})[kind] = (round(float(cosine.mean()), 4),
                                                                                round(float(cosine.min()), 4))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="a `hicmd export --int8` folder")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    if not (args.model / "rgb.int8.onnx").is_file():
        raise SystemExit(f"error: {args.model} has no rgb.int8.onnx; point --model at a `hicmd export --int8` folder")
    print(json.dumps(cpu_info().summary()))
    for row, values in measure(args.model, args.threads, args.rounds).items():
        print(f"{row:32s} " + "  ".join(f"{kind} {value}" for kind, value in values.items()))


if __name__ == "__main__":
    main()
