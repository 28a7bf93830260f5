"""INT8 Q/DQ embedder graphs (`rgb.int8.onnx`, `ir.int8.onnx`) by post-training quantization
(docs/reference/quantization.md).

One artifact serves ONNX Runtime's CPU provider, OpenVINO and TensorRT (10.3 explicit quantization, 11.x strongly
typed): ONNX Runtime's `quantize_static` in QDQ format with
- symmetric activations stored as uint8 with zero point 128 and per-channel symmetric INT8 weights. That is the
  very grid of TensorRT's signed INT8 with zero point 0 (q - 128, same scale), so `tensorrt_int8` rewrites it
  exactly, and it is the form x86 ONNX Runtime fuses into QLinearConv for every convolution (an s8 graph left 16
  of 38 unfused; the measurements behind the choice are in the README's INT8 section); a ReLU output takes zero
  point 0 on the same scale and the reflection padding runs on uint8, so that ONNX Runtime runs the ReLUs,
  residual Adds and paddings in integer kernels too (hicmd.export.int8_fusion);
- int32 bias DequantizeLinear and Q/DQ on convolution outputs, so ONNX Runtime fuses every convolution into
  QLinearConv; TensorRT's parser refuses an int32 DequantizeLinear, so its build folds those biases back into
  float constants first (`fold_bias_dequantize`, exact: bias = int32 * scale);
- only Conv (and, if asked, Gemm) quantized: the uint8 NHWC input, the in-graph normalisation, InstanceNorm, the
  L2-normalisations and every reduction stay float, as does the fused BNNeck head (the last Gemm).
The generator stays FP16/FP32: its PSNR gate is not worth the risk for a graph run once per translation.

Calibration: crops of the dataset's *training* split only, spread evenly over identities (sorted records,
evenly spaced picks: deterministic), each embedder with its own modality's crops, preprocessed as evaluation reads
them (uint8 RGB at the model size). Ranges are collected a batch at a time (bounded memory for histograms).
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnx
from onnx import numpy_helper

from hicmd.data.records import DataError
from hicmd.modality import MODALITIES

__all__ = ["METHODS", "DEFAULT_METHOD", "DEFAULT_CROPS", "MIN_CROPS", "Int8Options", "calibration_crops",
           "quantize_embedder", "tensorrt_int8", "quantized_ops", "CalibrationError", "read_calibration", "write_int8",
           "write_tensorrt_form"]

METHODS = ("max", "entropy", "percentile")
DEFAULT_METHOD = "percentile"  # measured on three models: see the README's INT8 section, "Calibration method"
DEFAULT_CROPS = 256  # per modality: NNCF's 300 / TensorRT's >= 500 guidance, trimmed for 2-core export times
MIN_CROPS = 16  # below this the ranges are noise: refused
CALIB_BATCH = 8
QUANTIZED_OPS = ("Conv",)


@dataclass(frozen=True)
class Int8Options:
    calib: str  # dataset spec whose training split calibrates, e.g. "regdb:PATH"
    method: str = DEFAULT_METHOD
    crops: int = DEFAULT_CROPS
    max_drop: float = 1.0  # largest R1 (and mAP) drop vs FP32 in points under the dataset's protocol
    quantize_head: bool = False  # also quantize the Gemm of the fused BNNeck head

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise CalibrationError(f"calibration method {self.method!r}: use one of {', '.join(METHODS)}")
        if self.crops < MIN_CROPS:
            raise CalibrationError(f"{self.crops} calibration crops: at least {MIN_CROPS} crops are needed for "
                                   "stable ranges")
        if not 0.0 <= self.max_drop <= 100.0:
            raise CalibrationError(f"largest allowed INT8 drop {self.max_drop}: use 0..100 points")


def calibration_crops(spec: str, height: int, width: int, count: int) -> tuple[dict[str, np.ndarray], dict]:
    """`count` uint8 (N, H, W, 3) RGB crops per modality from the training split of `spec`, and a record of
    which (file names and the SHA-256 of the pixels) for the manifest. Raises DataError when too few or unreadable."""
    import hashlib

    from hicmd.data import load_split, parse_dataset_spec
    from hicmd.data.io import read_image

    kind, root, trial = parse_dataset_spec(spec)
    records = load_split(kind, root, "train", trial)
    images, record = {}, {"dataset": kind, "split": "train", "root": str(root), "per_modality": count}
    for modality in MODALITIES:
        recs = sorted((r for r in records if r.modality == modality), key=lambda r: (r.pid, str(r.path)))
        if len(recs) < count:
            raise DataError(f"{spec}: the training split has {len(recs)} {modality} images, INT8 calibration needs "
                            f"{count} (lower --calib-crops, at least {MIN_CROPS})")
        picked = [recs[i] for i in np.linspace(0, len(recs) - 1, count).round().astype(int)]
        images[modality] = np.stack([read_image(r.path, height, width) for r in picked])
        record[modality] = {"images": count, "identities": len({r.pid for r in picked}),
                            "sha256": hashlib.sha256(images[modality].tobytes()).hexdigest()}
    return images, record


class _Reader:
    """onnxruntime.quantization CalibrationDataReader over uint8 crops, CALIB_BATCH at a time; `set_range` lets
    quantize_static collect (and reduce) one batch at a time instead of holding every activation of every crop."""

    def __init__(self, name: str, images: np.ndarray) -> None:
        self.name = name
        self.batches = [images[i:i + CALIB_BATCH] for i in range(0, len(images), CALIB_BATCH)]
        self.set_range(0, len(self.batches))

    def __len__(self) -> int:
        return len(self.batches)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._iter = iter(self.batches[start_index:end_index])

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._iter, None)
        return None if batch is None else {self.name: batch}


def _head_gemms(model: onnx.ModelProto) -> list[str]:
    return [n.name for n in model.graph.node if n.op_type == "Gemm"]


def quantize_embedder(src: str | Path, dst: str | Path, images: np.ndarray, method: str = DEFAULT_METHOD,
                      quantize_head: bool = False, activation: str = "symmetric",
                      mixed: bool = True, fuse: bool = True) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """FP32 embedder graph at `src` -> Q/DQ INT8 graph at `dst`, calibrated on `images` (uint8 NHWC); returns it
    with the record of what was done to it: `mixed_precision` (hicmd.export.int8_mixed: activation-bounded ranges
    always; with `mixed`, the most sensitive convolutions kept float when the all-INT8 graph misses the cosine
    target) and, with `fuse`, how many ReLU outputs went onto zero point 0 and paddings onto uint8
    (hicmd.export.int8_fusion; 0 without).

    `activation` "symmetric" is the artifact: uint8 activations with zero point 128, the very grid of TensorRT's
    signed INT8 with zero point 0 (`tensorrt_int8` converts exactly), and the one x86 ONNX Runtime fuses into
    QLinearConv everywhere. "s8" (signed, zero point 0) and "asymmetric" (uint8, calibrated zero points) exist for
    the measurements that chose it."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    from hicmd.export.graphs import check_onnx
    from hicmd.export.int8_fusion import pads_on_uint8, relu_outputs_on_zero_point_0
    from hicmd.export.int8_mixed import activation_bounded_ranges, keep_sensitive_float

    if activation not in ("symmetric", "s8", "asymmetric"):
        raise ValueError(f"activation {activation!r}: use symmetric, s8 or asymmetric")
    methods = {"max": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    model = onnx.load(str(src))
    symmetric = activation != "asymmetric"
    extra = {
        "ActivationSymmetric": symmetric, "WeightSymmetric": True, "QuantizeBias": True,
        "CalibTensorRangeSymmetric": symmetric,
        "CalibStridedMinMax": 1,  # collect one reader item (a batch) at a time: bounded memory for histograms
        "TensorQuantOverrides": activation_bounded_ranges(model, symmetric),
    }
    with tempfile.TemporaryDirectory(prefix="hicmd-int8-") as tmp, _quiet():
        out = Path(tmp) / "int8.onnx"
        quantize_static(str(src), str(out), _Reader(model.graph.input[0].name, images), quant_format=QuantFormat.QDQ,
                        op_types_to_quantize=[*QUANTIZED_OPS, *(["Gemm"] if quantize_head else [])],
                        per_channel=True, reduce_range=False,
                        activation_type=QuantType.QInt8 if activation == "s8" else QuantType.QUInt8,
                        weight_type=QuantType.QInt8, calibrate_method=methods[method],
                        nodes_to_exclude=[] if quantize_head else _head_gemms(model), extra_options=extra)
        quantized = onnx.load(str(out))
    precision: dict[str, Any] = {"activation_bounded_ranges": len(extra["TensorQuantOverrides"])}
    if mixed:
        quantized, precision["sensitivity"] = keep_sensitive_float(quantized, model, images)
    record: dict[str, Any] = {"mixed_precision": precision, "relu_outputs_zero_point_0": 0, "pads_on_uint8": 0}
    if fuse and activation == "symmetric":  # ReLU outputs on zero point 0, padding on uint8 (int8_fusion)
        record["relu_outputs_zero_point_0"] = relu_outputs_on_zero_point_0(quantized)
        record["pads_on_uint8"] = pads_on_uint8(quantized)
    quantized.producer_name, quantized.producer_version = model.producer_name, model.producer_version
    check_onnx(quantized)
    onnx.save(quantized, str(dst))
    return quantized, record


@contextlib.contextmanager
def _quiet():
    """The histogram calibrators print a line per batch and the quantizer logs a pre-processing hint on the root
    logger: noise in a CLI that shows its own progress."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(level)


def quantized_ops(model: onnx.ModelProto) -> dict[str, Any]:
    """What the graph quantizes: op types fed by a DequantizeLinear on their first input, the Q/DQ counts, and the
    activation (QuantizeLinear zero point) types and values."""
    from hicmd.export.int8_fusion import producers_of

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    produced = producers_of(graph)
    fed: dict[str, int] = {}
    for n in graph.node:
        if n.op_type not in ("QuantizeLinear", "DequantizeLinear") and n.input:
            src = produced.get(n.input[0])
            if src is not None and src.op_type == "DequantizeLinear":
                fed[n.op_type] = fed.get(n.op_type, 0) + 1
    zero_points = [numpy_helper.to_array(inits[n.input[2]]) for n in graph.node
                   if n.op_type == "QuantizeLinear" and len(n.input) > 2 and n.input[2] in inits]
    return {"quantized": fed, "quantize": sum(n.op_type == "QuantizeLinear" for n in graph.node),
            "dequantize": sum(n.op_type == "DequantizeLinear" for n in graph.node),
            "activation_types": sorted({str(z.dtype) for z in zero_points}),
            "activation_zero_points": sorted({int(v) for z in zero_points for v in np.ravel(z)})}


def tensorrt_int8(model: onnx.ModelProto) -> onnx.ModelProto:
    """The same quantized network in the form TensorRT's ONNX parser takes (10.3 explicit quantization, 11.x
    strongly typed): uint8 activations with zero point 128 become int8 with zero point 0 (q - 128 on the same
    scale, exact); a ReLU output's uint8 zero point 0 becomes int8 zero point 0 (the same grid points, but int8
    clips at 127 steps where uint8 holds 255: only values beyond the calibrated range differ); the padding on
    uint8 goes back to float (exact); and every int32 bias DequantizeLinear becomes the float32 initializer it
    computes (int32 * scale): TensorRT accepts only zero point 0 and only activation types into DequantizeLinear.
    Raises ValueError for an asymmetric graph (a zero point other than 128, or 0 off a ReLU output), which has no
    TensorRT form."""
    from hicmd.export.int8_fusion import pads_back_on_float, producers_of, replace_nodes

    folded = onnx.ModelProto()
    folded.CopyFrom(model)
    pads_back_on_float(folded)
    graph = folded.graph
    inits = {t.name: t for t in graph.initializer}
    producer = producers_of(graph)
    relu_grids = {n.output[0] for n in graph.node if n.op_type == "QuantizeLinear"
                  and getattr(producer.get(n.input[0]), "op_type", None) == "Relu"}  # zero point 0 allowed
    keep = []
    for node in graph.node:
        x = inits.get(node.input[0]) if node.op_type == "DequantizeLinear" else None
        if x is not None and x.data_type == onnx.TensorProto.INT32:  # bias: fold into a float constant
            scale = numpy_helper.to_array(inits[node.input[1]]).astype(np.float64)
            value = (numpy_helper.to_array(x).astype(np.float64) * scale).astype(np.float32)
            graph.initializer.append(numpy_helper.from_array(value, node.output[0]))
            continue
        keep.append(node)
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") and len(node.input) > 2:
            zp = inits[node.input[2]]
            if zp.data_type == onnx.TensorProto.UINT8:
                values = numpy_helper.to_array(zp)
                on_relu = (node.output[0] if node.op_type == "QuantizeLinear" else node.input[0]) in relu_grids
                if np.any(values != 128) and not (on_relu and np.all(values == 0)):
                    raise ValueError(f"{node.name}: zero point {values.ravel()[:3]} is asymmetric; TensorRT takes "
                                     "symmetric INT8 only (re-export with this hicmd version)")
                zp.CopyFrom(numpy_helper.from_array(np.zeros(values.shape, np.int8), zp.name))
    replace_nodes(graph, keep)
    return folded


def write_tensorrt_form(path: Path) -> Path:
    """`x.int8.onnx` -> `x.int8.trt.onnx`, the graph TensorRT (and trtexec --stronglyTyped) builds from."""
    dst = path.with_name(path.name.replace(".int8.onnx", ".int8.trt.onnx"))
    onnx.save(tensorrt_int8(onnx.load(str(path))), str(dst))
    return dst


class CalibrationError(DataError):
    """Calibration data that cannot be used (too few crops, unreadable images, no training split)."""


def read_calibration(options: Int8Options, height: int, width: int) -> tuple[dict[str, np.ndarray], dict]:
    """The calibration crops of `options` (read before any graph is exported, so a bad --calib fails at once)."""
    try:
        return calibration_crops(options.calib, height, width, options.crops)
    except DataError as exc:
        raise CalibrationError(str(exc)) from None


def write_int8(folder: Path, options: Int8Options, calibration: tuple[dict[str, np.ndarray], dict],
               step: Callable[[str], None] = lambda _: None) -> dict:
    """`rgb.int8.onnx` and `ir.int8.onnx` in `folder` from its FP32 embedder graphs and `calibration`
    (read_calibration); returns the manifest record (calibration set, method, activation scheme, what is
    quantized)."""
    import onnxruntime

    images, record_of_crops = calibration
    record: dict[str, Any] = {
        "tool": f"onnxruntime.quantization {onnxruntime.__version__} quantize_static, QDQ",
        "method": options.method, "calibration": record_of_crops,
        "weights": "int8, symmetric, per output channel", "bias": "int32 (DequantizeLinear)",
        "activations": "uint8 with zero point 128 (symmetric: TensorRT's int8 grid with zero point 0); ReLU "
                       "outputs on the same scale with zero point 0 (TensorRT: int8 zero point 0 after the Relu)",
        "padding": "reflection padding on the uint8 tensor (exact); TensorRT's form pads in float",
        "float": "uint8 input + normalisation, InstanceNorm, L2-normalisations, reductions, the BNNeck head, and "
                 "the convolutions listed under each graph's mixed_precision.sensitivity.float",
        "ranges": "a convolution read only by a Clip with constant bounds (ReLU6) is quantized on the Clip's "
                  "bounds, not its calibrated pre-activation range (hicmd.export.int8_mixed)",
        "generator": "not quantized: stays FP32 / FP16",
    }
    for modality in MODALITIES:
        step(f"INT8: quantizing {modality}.int8.onnx ({options.method} calibration)")
        model, done = quantize_embedder(folder / f"{modality}.onnx", folder / f"{modality}.int8.onnx",
                                        images[modality], options.method, options.quantize_head)
        record[f"{modality}.int8"] = {**quantized_ops(model), **done}
    return record
