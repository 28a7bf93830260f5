"""Per-crop preprocessing cost of the runtime embedder (resize + colour order into the staging buffer), and its share
of a crop's whole embedding time.

    .venv/bin/python benchmarks/preprocess.py --config paper [--crops 8] [--runs 50] [--threads 2]
    .venv/bin/python benchmarks/preprocess.py --model hicmd-demo/model

Crops are BGR person boxes of the sizes a 640x480 / 1280x720 stream hands over (smaller and larger than the model
input, so both the down- and the up-scaling paths are timed), fed as the stream does: one `Embedder.embed` call per
modality batch, on ONNX Runtime (CPU). `--config` exports a random-initialised model of that preset to a temp folder
(weights do not change timing; needs the export extra), `--model` uses an export folder. Prints median ms per crop
of `preprocess` alone and of the whole `embed`, and the share.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from hicmd.runtime.embedder import Embedder

SIZES = [(60, 24), (96, 40), (128, 56), (180, 80), (240, 100), (300, 130), (420, 170), (520, 210)]


def _median_ms_per_crop(run, crops: list[np.ndarray], runs: int) -> float:
    run(crops)  # warm-up: buffers, session
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        run(crops)
        samples.append((time.perf_counter() - t0) * 1000.0 / len(crops))
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="paper", help="preset of the random-initialised model (paper, tiny)")
    parser.add_argument("--model", type=Path, help="an export folder instead of --config")
    parser.add_argument("--crops", type=int, default=8, help="crops per embed call (a stream step's batch)")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    label = str(args.model) if args.model else f"{args.config} (random weights)"
    with tempfile.TemporaryDirectory() as tmp:
        if args.model is None:
            from hicmd.bench.subjects import random_subject
            from hicmd.presets import PRESETS

            args.model = random_subject(PRESETS[args.config], Path(tmp), fp16=False).manifest.root
        embedder = Embedder(args.model, backend="onnxruntime", device="cpu", threads=args.threads,
                            modalities=("rgb",))
        rng = np.random.default_rng(0)
        crops = [rng.integers(0, 256, (*SIZES[i % len(SIZES)], 3), dtype=np.uint8) for i in range(args.crops)]
        prep = _median_ms_per_crop(embedder.preprocess, crops, args.runs * 4)
        embed = _median_ms_per_crop(lambda c: embedder.embed(c, "rgb"), crops, args.runs)
        embedder.close()
    height, width = embedder.size
    print(f"{label} {height}x{width}, {args.crops} crops per call: "
          f"preprocess {prep:.3f} ms/crop, embed (preprocess + ONNX Runtime) {embed:.3f} ms/crop, "
          f"preprocess share {100 * prep / embed:.1f} %")


if __name__ == "__main__":
    main()
