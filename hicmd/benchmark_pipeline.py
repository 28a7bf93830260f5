"""`hicmd bench`, the rest: what to measure (an export folder, or a random-initialised model exported to a temp
folder), the stream benchmark, the training-step benchmark and the pass/fail targets.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from hicmd.benchmark import Subject, TimingPolicy, latency_stats, time_runs

__all__ = ["random_subject", "export_subject", "find_clip", "make_clip", "bench_stream", "bench_train",
           "targets", "NUM_CLASSES", "BenchOptions", "run_bench"]

NUM_CLASSES = 206  # RegDB's training identities; the classifier is not on the embedding path


def _macs(model: Any) -> int:
    """MACs per image of the exported embedder graph (Conv2d + Linear, hicmd.model.summary's counting); equal to
    summarise()'s "inference path" row, without building and running the decoder and discriminators."""
    import torch

    from hicmd.export.graphs import EmbedderGraph
    from hicmd.model.summary import count_macs

    cfg = model.cfg
    return count_macs(EmbedderGraph(model, "rgb").eval(), torch.zeros(1, cfg.height, cfg.width, 3, dtype=torch.uint8))


def random_subject(cfg: Any, folder: Path, fp16: bool = True, int8: bool = False) -> Subject:
    """A random-initialised HiCMD of `cfg`, its RGB embedder exported to `folder` (ONNX FP32, FP16, INT8
    calibrated on random crops: latency does not depend on the ranges) with the export package's graph API, and a
    manifest for the runtime backends."""
    from hicmd.config import config_to_dict
    from hicmd.export.fp16 import convert_fp16, fp32_scopes
    from hicmd.export.graphs import EMBEDDER_INPUT, EmbedderGraph, export_embedder
    from hicmd.model import HiCMD
    from hicmd.runtime.manifest import Artifact, InputSpec, Manifest, TensorSpec, sha256_file

    m = cfg.model
    folder.mkdir(parents=True, exist_ok=True)
    model = HiCMD(m, NUM_CLASSES).eval()
    files = {"fp32": folder / "rgb.onnx"}
    export_embedder(model, "rgb", files["fp32"])
    if fp16:
        files["fp16"] = folder / "rgb.fp16.onnx"
        convert_fp16(files["fp32"], files["fp16"], fp32_scopes(EmbedderGraph(model, "rgb")))
    if int8:
        from hicmd.export.int8 import quantize_embedder

        files["int8"] = folder / "rgb.int8.onnx"
        crops = np.random.default_rng(0).integers(0, 256, (16, m.height, m.width, 3), dtype=np.uint8)
        quantize_embedder(files["fp32"], files["int8"], crops, "max")
    inputs = (TensorSpec(EMBEDDER_INPUT, (-1, m.height, m.width, 3), "uint8"),)
    outputs = (TensorSpec("embedding", (-1, m.embedding_dim), "float32"),
               TensorSpec("prototype", (-1, *m.prototype_shape), "float32"),
               TensorSpec("attribute", (-1, m.attribute_dim), "float32"))
    artifacts = tuple(Artifact("rgb" + ("" if p == "fp32" else f".{p}"), "embedder", "rgb", p, "onnx", f.name,
                               sha256_file(f), inputs, outputs) for p, f in files.items())
    manifest = Manifest(
        config_name=cfg.name, config=config_to_dict(cfg), checkpoint={},
        input=InputSpec(EMBEDDER_INPUT, "NHWC", "uint8", "RGB", m.height, m.width, m.mean, m.std),
        embedding_dim=m.embedding_dim, attribute_dim=m.attribute_dim, prototype_shape=m.prototype_shape,
        attribute_layout={}, opset=17, artifacts=artifacts, root=folder, macs_per_image=_macs(model))
    manifest.save(folder)
    return Subject(cfg, manifest, model, manifest.macs_per_image, "random",
                   ["random-initialised weights: the weights do not change latency"])


def export_subject(folder: Path, checkpoint: Path | None) -> Subject:
    """An export folder (manifest.json) plus, for the torch rows and parity, its training checkpoint: `checkpoint`,
    or the one the manifest names if it still exists."""
    import importlib.util

    from hicmd.config import config_from_dict
    from hicmd.errors import UserError
    from hicmd.runtime.manifest import ManifestError, load_manifest

    try:
        manifest = load_manifest(folder)
    except ManifestError as exc:
        raise UserError(str(exc)) from None
    cfg = config_from_dict(manifest.config)
    if checkpoint is None and manifest.checkpoint.get("file"):
        named = Path(manifest.checkpoint["file"])
        for candidate in (folder / named, named):
            if candidate.is_file():
                checkpoint = candidate
                break
    notes = []
    model = None
    has_torch = importlib.util.find_spec("torch") is not None
    if not has_torch:
        notes.append("torch is not installed: torch rows are skipped and parity is against ONNX Runtime FP32")
    elif checkpoint is not None:
        from hicmd.train.checkpoint import CheckpointError, load_model

        try:
            model, ckpt_cfg = load_model(checkpoint)
        except CheckpointError as exc:
            raise UserError(f"--checkpoint: {exc}") from None
        if ckpt_cfg.model != cfg.model:
            raise UserError(f"{checkpoint} holds a different model config than {folder}/manifest.json; "
                            f"pass the checkpoint the folder was exported from")
    else:
        notes.append("no checkpoint found: torch rows are skipped, parity is against ONNX Runtime FP32 (pass "
                     "--checkpoint)")
    macs = manifest.macs_per_image or None
    if macs is None and has_torch:
        from hicmd.model import HiCMD

        macs = _macs(model if model is not None else HiCMD(cfg.model, NUM_CLASSES).eval())
    elif macs is None:
        notes.append("manifest.json records no MACs per image (an older export) and torch is not here to count "
                     "them: no GFLOP/s or % peak columns")
    return Subject(cfg, manifest, model, macs, str(checkpoint) if checkpoint else "exported", notes)


# --------------------------------------------------------------------------- stream


def find_clip(path: Path) -> Path:
    """A clip folder (rgb.mp4 + ir.mp4 + det_*.txt), given either the clip itself or a `hicmd synth --videos` root."""
    from hicmd.errors import UserError

    for candidate in (path, *sorted((path / "videos").glob("*")), *sorted(path.glob("*"))):
        if all((candidate / f).is_file() for f in ("rgb.mp4", "ir.mp4", "det_rgb.txt", "det_ir.txt")):
            return candidate
    raise UserError(f"--clip {path} holds no clip (rgb.mp4, ir.mp4, det_rgb.txt, det_ir.txt); "
                    f"write one with 'hicmd synth --out DIR --ids 8 --videos'")


def make_clip(folder: Path, frames: int) -> Path:
    """A small SynthVI clip (4 identities walking past both cameras) for the stream benchmark."""
    from hicmd.data.synthvi_video import write_videos

    return write_videos(folder, [0, 1, 2, 3], seed=0, clips=1, frames=frames)[0]


class _TimedEmbedder:
    """Wraps an Embedder and adds up the wall time of its calls. An export with only the RGB graph serves IR
    crops with it too (same architecture, same cost)."""

    def __init__(self, embedder: Any) -> None:
        self.inner, self.seconds, self.crops, self.calls = embedder, 0.0, 0, 0

    def embed(self, crops: list[np.ndarray], modality: str) -> np.ndarray:
        modality = modality if modality in self.inner.backends else "rgb"
        start = time.perf_counter()
        out = self.inner.embed(crops, modality)
        self.seconds += time.perf_counter() - start
        self.crops += len(crops)
        self.calls += 1
        return out

    def embed_pair(self, rgb: list[np.ndarray], ir: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        return self.embed(rgb, "rgb"), self.embed(ir, "ir")


def bench_stream(subject: Subject, clip: Path, threads: int, max_frames: int | None = None) -> dict[str, Any]:
    """Play a clip as fast as possible (files in order, detections from det_*.txt) through run_stream with the
    ONNX Runtime FP32 embedder; processed FPS against the embedder-bound FPS (1 / embedding time per step)."""
    from hicmd.runtime.embedder import Embedder
    from hicmd.runtime.stream import StreamOptions, run_stream

    modalities = ("rgb", "ir") if subject.manifest.find("embedder", "ir") else ("rgb",)
    embedder = Embedder(subject.manifest, backend="onnxruntime", device="cpu", precision="fp32", threads=threads,
                        modalities=modalities)
    description = embedder.describe()
    timed = _TimedEmbedder(embedder)
    spec = subject.manifest.input
    for modality in ("rgb", "ir"):  # warm-up: the first run of a session allocates and plans
        timed.embed([np.zeros((spec.height, spec.width, 3), np.uint8)], modality)
    timed.seconds, timed.crops, timed.calls = 0.0, 0, 0
    opts = StreamOptions(rgb=str(clip / "rgb.mp4"), ir=str(clip / "ir.mp4"),
                         detections_rgb=str(clip / "det_rgb.txt"), detections_ir=str(clip / "det_ir.txt"),
                         events=io.StringIO(), realtime=False, max_frames=max_frames, stats_every=1e9)
    try:
        summary = run_stream(opts, timed)
    finally:
        embedder.close()
    steps = summary.steps
    processed_fps = steps / summary.duration_s if summary.duration_s > 0 else 0.0
    bound_fps = steps / timed.seconds if timed.seconds > 0 else None
    return {"config": subject.cfg.name, "clip": str(clip), "steps": steps, "duration_s": summary.duration_s,
            "processed_fps": processed_fps, "embed_s": timed.seconds, "embedded_crops": timed.crops,
            "embed_ms_per_step": 1000.0 * timed.seconds / steps if steps else None,
            "embedder_bound_fps": bound_fps, "ratio": processed_fps / bound_fps if bound_fps else None,
            "stages": summary.stages, "frames": summary.frames, "embedder": description}


# --------------------------------------------------------------------------- training step


def _batch(cfg: Any) -> Any:
    import torch

    from hicmd.train.sampler import Batch

    t, m = cfg.train, cfg.model
    gen = torch.Generator().manual_seed(0)
    n_a = (t.neg_ids + 1) // 2

    def images(n: int) -> torch.Tensor:
        return torch.randn(n, 3, m.height, m.width, generator=gen)

    labels = torch.arange(t.pos_ids + t.neg_ids)
    return Batch(x_a=images(t.pos_ids), x_b=images(t.pos_ids), labels=labels[: t.pos_ids],
                 neg_a=images(n_a), neg_a_labels=labels[t.pos_ids:t.pos_ids + n_a],
                 neg_b=images(t.neg_ids - n_a), neg_b_labels=labels[t.pos_ids + n_a:])


def bench_train(cfg: Any, policy: TimingPolicy, threads: int) -> dict[str, Any]:
    """Iterations/s of the full training step (D update + G update with HFL) on one in-memory random batch."""
    import torch

    from hicmd.model import HiCMD
    from hicmd.train.trainer import Trainer

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    trainer = Trainer(HiCMD(cfg.model, NUM_CLASSES), cfg, "cpu")
    batch = _batch(cfg)
    times, _ = time_runs(lambda: (trainer.dis_update(batch), trainer.gen_update(batch)), policy)
    stats = latency_stats(times, 1)
    images = batch.x_a.shape[0] * 2 + batch.neg_a.shape[0] + batch.neg_b.shape[0]
    return {"config": cfg.name, "device": "cpu", "threads": threads, "runs": stats["runs"],
            "p50_s": stats["p50_ms"] / 1000.0, "iters_per_s": stats["images_per_s"],
            "images_per_iter": images, "images_per_s": stats["images_per_s"] * images}


# --------------------------------------------------------------------------- targets


def targets(rows: list[dict[str, Any]], streams: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issues' targets for the `paper` config; `met` is None where this run did not measure the case."""

    def find(batch: int, backend: str = "onnxruntime", precision: str = "fp32") -> dict[str, Any] | None:
        return next((r for r in rows if r.get("status") == "ok" and r["config"] == "paper" and r["batch"] == batch
                     and r["backend"] == backend and r["device"] == "cpu" and r["precision"] == precision), None)

    def fastest(batch: int, backends: tuple[str, ...]) -> dict[str, Any] | None:
        found = [r for r in rows if r.get("status") == "ok" and r["config"] == "paper" and r["batch"] == batch
                 and r["device"] == "cpu" and r["backend"] in backends]
        return min(found, key=lambda r: r["p50_ms"]) if found else None

    def ratio(slow: dict[str, Any] | None, fast: dict[str, Any] | None) -> float | None:
        return slow["p50_ms"] / fast["p50_ms"] if slow and fast else None

    def target(name: str, value: float | None, threshold: float, why: str) -> dict[str, Any]:
        met = None if value is None else bool(value >= threshold)
        return {"target": name, "value": value, "threshold": threshold, "met": met,
                "note": "" if value is not None else why}

    b8, b1 = find(8), find(1)
    stream = next((s for s in streams if s["config"] == "paper"), None)
    best1 = fastest(1, ("onnxruntime", "openvino"))
    return [
        target("paper ORT FP32 batch 8: fraction of sgemm peak", b8 and b8["peak_fraction"], 0.60,
               "not measured: needs --config paper --batch 8 --backend onnxruntime --precision fp32"),
        target("paper ORT FP32 batch 1: speed-up over torch eager", b1 and b1.get("speedup_vs_eager"), 2.0,
               "not measured: needs --config paper --batch 1 and both torch and onnxruntime"),
        target("paper stream: processed / embedder-bound FPS", stream and stream["ratio"], 0.90,
               "not measured: needs --stream with --config paper"),
        *[target(f"paper ORT INT8 batch {b}: speed-up over ORT FP32 (VNNI CPUs)",
                 ratio(find(b), find(b, precision="int8")), 2.0,
                 f"not measured: needs --config paper --batch {b} --backend onnxruntime --precision fp32,int8")
          for b in (1, 8)],
        target("paper fastest CPU path batch 1: speed-up over torch eager (AMX CPUs)",
               best1 and best1.get("speedup_vs_eager"), 6.0,
               "not measured: needs --config paper --batch 1 with torch and onnxruntime/openvino"),
        target("paper batch 1: OpenVINO's best / ONNX Runtime's best p50 (ORT never slower)",
               ratio(fastest(1, ("openvino",)), fastest(1, ("onnxruntime",))), 1.0,
               "not measured: needs --config paper --batch 1 --backend onnxruntime,openvino"),
    ]


def timed_step(label: str, fn: Callable[[], Any], log: Callable[[str], None]) -> Any:
    """Run `fn`, then log how long it took (export, peak, clip writing)."""
    start = time.perf_counter()
    out = fn()
    log(f"{label}: {time.perf_counter() - start:.1f} s")
    return out


# --------------------------------------------------------------------------- one whole run


@dataclass
class BenchOptions:
    configs: list[str] = field(default_factory=lambda: ["paper", "tiny"])
    batches: list[int] = field(default_factory=lambda: [1, 8, 32])
    backends: list[str] = field(default_factory=lambda: ["torch", "onnxruntime", "tensorrt"])
    precisions: list[str] = field(default_factory=lambda: ["fp32", "fp16"])
    model: Path | None = None  # export folder; None = random-initialised model of each config
    checkpoint: Path | None = None
    quick: bool = False
    threads: int | None = None
    compile: bool = False
    embedder: bool = True
    stream: bool = False
    videos: Path | None = None
    train: bool = False


def run_bench(opts: BenchOptions, work: Path, log: Callable[[str], None] = print,
              progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Everything one `hicmd bench` measures, as the result dict the report writers take. `work` holds temporary
    exports and clips."""
    import importlib.util

    from hicmd.benchmark import FULL, QUICK, add_ratios, bench_embedder, default_threads, machine_info
    from hicmd.benchmark_peaks import measure_peaks, peak_class
    from hicmd.config import PRESETS
    from hicmd.errors import UserError

    threads = opts.threads or default_threads()
    policy = QUICK if opts.quick else FULL
    machine = machine_info(threads)
    repeats = 3 if opts.quick else 10
    peaks = timed_step("GEMM peaks (fp32, int8, bf16)", lambda: measure_peaks(threads, 2048, repeats), log)
    if opts.model is not None:
        subjects = [timed_step(f"load {opts.model}", lambda: export_subject(opts.model, opts.checkpoint), log)]
    elif importlib.util.find_spec("torch") is None:
        raise UserError("without torch, hicmd bench measures an export folder: pass --model DIR (hicmd export)")
    else:
        subjects = [timed_step(f"export random {name}", lambda name=name: random_subject(
            PRESETS[name], work / name, fp16="fp16" in opts.precisions, int8="int8" in opts.precisions), log)
            for name in opts.configs]
    rows: list[dict[str, Any]] = []
    if opts.embedder:
        for subject in subjects:
            rows += bench_embedder(subject, opts.batches, opts.backends, opts.precisions, threads, policy,
                                   peaks, opts.compile, progress)
        add_ratios(rows)
    streams = []
    if opts.stream:
        clip = find_clip(opts.videos) if opts.videos else timed_step(
            "write SynthVI clip", lambda: make_clip(work / "videos", 20 if opts.quick else 120), log)
        for subject in subjects:
            if progress:
                progress(f"stream {subject.cfg.name}")
            streams.append(bench_stream(subject, clip, threads, 20 if opts.quick else None))
    trains = []
    if opts.train:
        train_policy = TimingPolicy(1, 2, 0.0, 2) if opts.quick else TimingPolicy(2, 20, 30.0, 5)
        for subject in subjects:
            if progress:
                progress(f"training step {subject.cfg.name}")
            trains.append(bench_train(subject.cfg, train_policy, threads))
    # Measured again at the end: on a busy machine the higher of the two is closer to the real ceiling.
    again = measure_peaks(threads, 2048, repeats)
    for kind, first in list(peaks.items()):
        if first is None or again.get(kind) is None:
            continue
        best = max(first, again[kind], key=lambda p: p["gflops"])
        peaks[kind] = {**best, "method": best["method"] + " (higher of a run before and one after the timings)",
                       "measured_gflops": [first["gflops"], again[kind]["gflops"]]}
    for row in rows:
        peak = peaks.get(peak_class(row.get("precision", ""), row.get("device", ""))) or {}
        if row.get("status") == "ok" and row.get("gflops") and peak.get("gflops"):
            row["peak_fraction"] = row["gflops"] / peak["gflops"]
    peak = peaks["fp32"]
    return {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "quick": opts.quick, "threads": threads,
        "policy": (f"warm-up {policy.warmup}, then until {policy.min_runs} runs or {policy.min_seconds:g} s "
                   f"(at least {policy.floor_runs} runs)"),
        "machine": machine, "peak": peak, "peaks": peaks,
        "weights": ", ".join(sorted({s.weights for s in subjects})) + (
            " (latency does not depend on the weights)" if any(s.weights == "random" for s in subjects) else ""),
        "configs": {s.cfg.name: {"macs_per_image": s.macs, "weights": s.weights, "notes": s.notes}
                    for s in subjects},
        "embedder": rows, "stream": streams, "train": trains, "targets": targets(rows, streams),
    }
