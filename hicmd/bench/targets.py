"""The issues' speed targets for the `paper` config, judged on one run's rows."""

from __future__ import annotations

from hicmd.bench.rows import EmbedderRow, StreamRow, Target

__all__ = ["targets"]


def targets(rows: list[EmbedderRow], streams: list[StreamRow]) -> list[Target]:
    """The issues' targets for the `paper` config; `met` is None where this run did not measure the case."""

    def find(batch: int, backend: str = "onnxruntime", precision: str = "fp32") -> EmbedderRow | None:
        return next((r for r in rows if r.ok and r.config == "paper" and r.batch == batch and r.backend == backend
                     and r.device == "cpu" and r.precision == precision), None)

    def fastest(batch: int, backends: tuple[str, ...], onnx_only: bool = False) -> EmbedderRow | None:
        found = [r for r in rows if r.ok and r.config == "paper" and r.batch == batch and r.device == "cpu"
                 and r.backend in backends and not (onnx_only and r.variant == "nncf")]
        return min(found, key=lambda r: r.p50_ms) if found else None

    def ratio(slow: EmbedderRow | None, fast: EmbedderRow | None) -> float | None:
        return slow.p50_ms / fast.p50_ms if slow and fast else None

    def target(name: str, value: float | None, threshold: float, why: str) -> Target:
        met = None if value is None else bool(value >= threshold)
        return Target(name, value, threshold, met, "" if value is not None else why)

    b8, b1 = find(8), find(1)
    stream = next((s for s in streams if s.config == "paper"), None)
    best1 = fastest(1, ("onnxruntime", "openvino"))
    return [
        target("paper ORT FP32 batch 8: fraction of sgemm peak", b8 and b8.peak_fraction, 0.60,
               "not measured: needs --config paper --batch 8 --backend onnxruntime --precision fp32"),
        target("paper ORT FP32 batch 1: speed-up over torch eager", b1 and b1.speedup_vs_eager, 2.0,
               "not measured: needs --config paper --batch 1 and both torch and onnxruntime"),
        target("paper stream: processed / embedder-bound FPS", stream and stream.ratio, 0.90,
               "not measured: needs --stream with --config paper"),
        *[target(f"paper ORT INT8 batch {b}: speed-up over ORT FP32 (VNNI CPUs)",
                 ratio(find(b), find(b, precision="int8")), 2.0,
                 f"not measured: needs --config paper --batch {b} --backend onnxruntime --precision fp32,int8")
          for b in (1, 8)],
        target("paper fastest CPU path batch 1: speed-up over torch eager (AMX CPUs)",
               best1 and best1.speedup_vs_eager, 6.0,
               "not measured: needs --config paper --batch 1 with torch and onnxruntime/openvino"),
        # the peer a user would otherwise pick: OpenVINO given the exported ONNX graphs (not hicmd's NNCF IR)
        target("paper batch 1: OpenVINO's best on the exported ONNX graphs / hicmd's fastest p50 (never slower)",
               ratio(fastest(1, ("openvino",), onnx_only=True), best1), 1.0,
               "not measured: needs --config paper --batch 1 --backend onnxruntime,openvino"),
    ]
