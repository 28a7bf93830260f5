"""Static TensorRT 10.x check of an ONNX graph: ops, attributes and dtypes the ONNX parser accepts.

Runs without TensorRT, so a graph that a Jetson on JetPack 6 (TensorRT 10.3) would refuse is caught at export
time on any machine. `TRT10_OPS` lists the ops hicmd's graphs use (plus the few an exporter may leave behind), each
marked supported in onnx/onnx-tensorrt docs/operators.md (10.x: "opset 9 to opset 20"); the restrictions below are
that table's, onnxOpCheckers.cpp's (training-mode BatchNormalization) and docs/reference/deployment.md §3/§8's
(strong typing).
"""

from __future__ import annotations

from pathlib import Path

import onnx
from onnx import TensorProto

__all__ = ["TRT10_OPS", "TRT10_OPSETS", "check_tensorrt"]

TRT10_OPS = frozenset({
    "Add", "BatchNormalization", "Cast", "Clip", "Concat", "Constant", "ConstantOfShape", "Conv", "Div", "Expand",
    "Flatten", "Gather", "Gemm", "GlobalAveragePool", "Identity", "InstanceNormalization", "LeakyRelu", "MatMul",
    "MaxPool", "Mul", "Pad", "Pow", "QuantizeLinear", "DequantizeLinear", "ReduceL2", "ReduceMean", "ReduceSum",
    "ReduceProd", "Relu", "Reshape", "Resize",
    "Shape", "Slice", "Sqrt", "Squeeze", "Sub", "Transpose", "Unsqueeze",
})
TRT10_OPSETS = (9, 20)  # inclusive range of the 10.0/10.1 parser
# TensorRT tensor types; UINT8 only as a network input/output or a Cast source (graph I/O checked separately).
TRT_TYPES = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.INT32, TensorProto.INT64, TensorProto.BOOL,
             TensorProto.INT8, TensorProto.UINT8}
RESIZE_MODES = {"nearest", "linear"}
RESIZE_COORDS = {"half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric", "align_corners"}
PAD_MODES = {"constant", "reflect", "edge"}
_NAMES = {v: k for k, v in TensorProto.DataType.items()}


def _attr(node: onnx.NodeProto, name: str, default=None):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _all_zero(graph: onnx.GraphProto, name: str) -> bool:
    from onnx import numpy_helper

    init = next((t for t in graph.initializer if t.name == name), None)
    return init is not None and not numpy_helper.to_array(init).any()


def check_tensorrt(model: onnx.ModelProto | str | Path) -> list[str]:
    """Problems TensorRT 10.x's ONNX parser would have with `model`, one line each; [] when it is clean."""
    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(model))
    model = onnx.shape_inference.infer_shapes(model)
    graph = model.graph
    problems: list[str] = []
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if not TRT10_OPSETS[0] <= opset <= TRT10_OPSETS[1]:
        problems.append(f"opset {opset} is outside TensorRT 10's {TRT10_OPSETS[0]}..{TRT10_OPSETS[1]}")
    constants = {t.name for t in graph.initializer}
    constants |= {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    types = {t.name: t.data_type for t in graph.initializer}
    for vi in [*graph.input, *graph.output, *graph.value_info]:
        types[vi.name] = vi.type.tensor_type.elem_type
    for n in graph.node:
        if n.op_type == "Constant":
            types[n.output[0]] = _attr(n, "value").data_type

    # a DequantizeLinear output -> the initializer it dequantizes (quantized weights are constants too)
    producers = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "DequantizeLinear"}

    def where(node: onnx.NodeProto) -> str:
        return f"{node.op_type} {node.name or node.output[0]!r}"

    def dtype(name: str) -> int | None:
        return types.get(name)

    for node in graph.node:
        if node.domain not in ("", "ai.onnx"):
            problems.append(f"{where(node)}: custom domain {node.domain!r} needs a TensorRT plugin")
            continue
        if node.op_type not in TRT10_OPS:
            problems.append(f"{where(node)}: op not in the TensorRT 10.x list hicmd checks against")
            continue
        op, ins = node.op_type, list(node.input)
        if op == "BatchNormalization" and (_attr(node, "training_mode", 0) or len(node.output) > 1):
            problems.append(f"{where(node)}: training-mode BatchNormalization is rejected by TensorRT "
                            "(export with the model in eval mode / use instance norm)")
        if op == "InstanceNormalization":
            if not all(i in constants for i in ins[1:3]):
                problems.append(f"{where(node)}: scale and B must be initializers")
            kinds = {dtype(i) for i in ins[:3]}
            if len(kinds) != 1:
                problems.append(f"{where(node)}: input, scale and B have different dtypes "
                                f"({', '.join(_NAMES.get(k, '?') for k in kinds if k is not None)})")
        if op == "Resize":
            if _attr(node, "mode", b"nearest").decode() not in RESIZE_MODES:
                problems.append(f"{where(node)}: mode must be nearest or linear")
            if _attr(node, "coordinate_transformation_mode", b"half_pixel").decode() not in RESIZE_COORDS:
                problems.append(f"{where(node)}: unsupported coordinate_transformation_mode")
            if _attr(node, "antialias", 0):
                problems.append(f"{where(node)}: antialias is not supported")
            if len(ins) > 2 and ins[2] and dtype(ins[2]) != TensorProto.FLOAT:
                problems.append(f"{where(node)}: scales must be float32, not {_NAMES.get(dtype(ins[2]), '?')}")
        if op == "Pad":
            if _attr(node, "mode", b"constant").decode() not in PAD_MODES:
                problems.append(f"{where(node)}: unsupported pad mode")
            if len(ins) < 2 or ins[1] not in constants:
                problems.append(f"{where(node)}: pads must be an initializer or Constant")
            if len(ins) > 3 and ins[3] and ins[3] not in constants:
                problems.append(f"{where(node)}: axes must be an initializer")
        if op in ("Slice",) and len(ins) > 3 and ins[3] and ins[3] not in constants:
            problems.append(f"{where(node)}: axes must be an initializer")
        if op in ("Squeeze", "Unsqueeze") and len(ins) > 1 and ins[1] not in constants:
            problems.append(f"{where(node)}: axes must be a constant")
        if op in ("QuantizeLinear", "DequantizeLinear"):  # explicit quantization (docs/reference/quantization.md §2)
            if ins[1] not in constants:
                problems.append(f"{where(node)}: scale must be an initializer (a build-time constant)")
            if len(ins) < 3 or dtype(ins[2]) != TensorProto.INT8 or not _all_zero(graph, ins[2]):
                problems.append(f"{where(node)}: TensorRT takes symmetric INT8 only (int8 zero point 0)")
            if op == "DequantizeLinear" and dtype(ins[0]) not in (TensorProto.INT8, None):
                problems.append(f"{where(node)}: input is {_NAMES.get(dtype(ins[0]), '?')}; TensorRT dequantizes "
                                "activation types only (fold an int32 bias into a float constant)")
        if op in ("Conv", "Gemm"):
            if op == "Conv" and ins[1] not in constants and producers.get(ins[1]) not in constants:
                problems.append(f"{where(node)}: weights must be an initializer (or its DequantizeLinear)")
            kinds = {dtype(i) for i in ins if i}
            if len(kinds) > 1:  # strongly typed: weights and bias in the activation's dtype
                problems.append(f"{where(node)}: mixed input dtypes "
                                f"({', '.join(_NAMES.get(k, '?') for k in kinds if k is not None)})")
        for out in node.output:
            kind = dtype(out)
            if kind is not None and kind != TensorProto.UNDEFINED and kind not in TRT_TYPES:
                problems.append(f"{where(node)}: output {out!r} is {_NAMES.get(kind, kind)}, not a TensorRT type")
    for t in graph.initializer:
        if t.data_type == TensorProto.DOUBLE:
            problems.append(f"initializer {t.name!r} is float64; TensorRT would cast it down")
    return problems

