"""Where the Q/DQ graph quantizes a ReLU output and a padding, so that ONNX Runtime runs more of the network in
integer kernels (README, INT8 section, "ONNX Runtime INT8 ..."). Graph-only, no calibration: the scales stay the
calibrated ones.

`quantize_static` with symmetric activations (uint8, zero point 128: TensorRT's int8 grid) leaves every ReLU as a
float island, `Conv -> Q -> DQ -> Relu -> Q -> DQ` and `DQ, DQ -> Add -> Relu -> Q -> DQ`: ONNX Runtime fuses the
convolution into QLinearConv but then dequantizes its output, runs Relu in float and quantizes again, and the
residual Add stays float (its output goes to the Relu, not to a QuantizeLinear). On the `paper` embedder that is
77 DequantizeLinear / Relu / QuantizeLinear triples over full feature maps, and the layout Transposes between them.

A ReLU output is never negative, so its QuantizeLinear can take zero point 0 with the same scale: the same grid
points k * scale (k = 0..127) as zero point 128, and the ReLU is what a uint8 zero-point-0 quantizer does anyway
(its clamp at 0), which ONNX Runtime knows (ReluQuantFusion drops the Relu), after which the convolution fuses with
it (QLinearConv, whose output clamp is the ReLU) and the residual Add becomes QLinearAdd. The pair quantizing the
ReLU's *input* (the convolution output on its own symmetric range) is bypassed: the ReLU output is rounded once,
on its own grid, instead of twice. The ReLU node stays in the graph, so the graph reads as it computes and
TensorRT's form (hicmd.export.int8.tensorrt_int8) is `Relu -> Q(int8, zero point 0)`, TensorRT's own pattern.

What changes numerically: the double rounding is gone, and a ReLU output above its calibrated range (127 steps)
is clipped by TensorRT's int8 but kept by the uint8 grid up to 255 steps; within the calibrated range the two forms
are bit-identical (`tests/test_int8.py`).

The reflection padding of each ConvBlock runs on the uint8 tensor (`pads_on_uint8`): exact, and a quarter of the
bytes; TensorRT's form keeps it in float (`pads_back_on_float`).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

__all__ = ["RELU_ZERO_POINT", "pads_back_on_float", "pads_on_uint8", "producers_of", "readers_of",
           "relu_outputs_on_zero_point_0", "replace_nodes"]

RELU_ZERO_POINT = 0  # uint8 zero point of a quantized ReLU output (the other activations keep 128)


def readers_of(graph: onnx.GraphProto) -> dict[str, list[onnx.NodeProto]]:
    """Tensor name -> the nodes that read it."""
    readers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    return readers


def producers_of(graph: onnx.GraphProto) -> dict[str, onnx.NodeProto]:
    """Tensor name -> the node that writes it."""
    return {name: node for node in graph.node for name in node.output}


def relu_outputs_on_zero_point_0(model: onnx.ModelProto) -> int:
    """In place: every Relu read only by QuantizeLinear(s) with a uint8 zero point gets zero point 0 on those
    quantizers and their DequantizeLinear readers, and a Q/DQ pair feeding only that Relu is bypassed. Returns how
    many ReLUs were moved onto zero point 0."""
    graph = model.graph
    constants = {t.name: t for t in graph.initializer}
    producer = producers_of(graph)
    readers = readers_of(graph)
    outputs = {o.name for o in graph.output}
    bypassed: set[str] = set()  # names of the Q/DQ pairs no longer read (quantize_static names every node)
    moved = 0
    for relu in [n for n in graph.node if n.op_type == "Relu"]:
        quantizers = readers.get(relu.output[0], [])
        if relu.output[0] in outputs or not quantizers or any(not _uint8_quantizer(q, constants) for q in quantizers):
            continue
        dequantizers = [d for q in quantizers for d in readers.get(q.output[0], [])]
        if any(d.op_type != "DequantizeLinear" for d in dequantizers):
            continue
        for q in quantizers:
            zero = f"{q.output[0]}_zero_point_0"
            shape = numpy_helper.to_array(constants[q.input[2]]).shape
            graph.initializer.append(numpy_helper.from_array(np.full(shape, RELU_ZERO_POINT, np.uint8), zero))
            for node in [q, *readers.get(q.output[0], [])]:
                node.input[2] = zero
        dq = producer.get(relu.input[0])
        q = producer.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
        if (q is not None and q.op_type == "QuantizeLinear" and readers.get(relu.input[0]) == [relu]
                and readers.get(q.output[0]) == [dq] and dq.input[0] not in outputs and q.name and dq.name):
            relu.input[0] = q.input[0]  # round once, on the ReLU output's grid
            bypassed |= {q.name, dq.name}
        moved += 1
    replace_nodes(graph, [n for n in graph.node if n.name not in bypassed])
    return moved


def replace_nodes(graph: onnx.GraphProto, nodes: list[onnx.NodeProto]) -> None:
    """In place: the graph's nodes become `nodes`, and the initializers no node reads any more are dropped."""
    del graph.node[:]
    graph.node.extend(nodes)
    used = {name for n in graph.node for name in n.input}
    for t in [t for t in graph.initializer if t.name not in used]:
        graph.initializer.remove(t)


def _uint8_quantizer(node: onnx.NodeProto, constants: dict[str, onnx.TensorProto]) -> bool:
    return (node.op_type == "QuantizeLinear" and len(node.input) > 2 and node.input[2] in constants
            and constants[node.input[2]].data_type == onnx.TensorProto.UINT8)


VALUE_COPYING_PADS = (b"reflect", b"edge")  # modes whose output values are input values: exact on a quantized grid


def pads_on_uint8(model: onnx.ModelProto) -> int:
    """In place: `x -> Pad(reflect | edge) -> Q -> DQ` becomes `x -> Q -> Pad -> DQ`, the padding done on the uint8
    tensor (exact: it only copies values, and quantizing commutes with copying), which leaves ONNX Runtime one
    float op less before each padded convolution and a quarter of the bytes to pad. Returns how many Pads moved.
    TensorRT's form moves them back (`pads_back_on_float`)."""
    graph = model.graph
    readers = readers_of(graph)
    outputs = {o.name for o in graph.output}
    moved = 0
    for pad in [n for n in graph.node if n.op_type == "Pad"]:
        mode = next((a.s for a in pad.attribute if a.name == "mode"), b"constant")
        quantizers = readers.get(pad.output[0], [])
        if mode not in VALUE_COPYING_PADS or len(quantizers) != 1 or quantizers[0].op_type != "QuantizeLinear" \
                or pad.output[0] in outputs or quantizers[0].output[0] in outputs:
            continue
        _swap(graph, pad, quantizers[0])
        moved += 1
    return moved


def pads_back_on_float(model: onnx.ModelProto) -> int:
    """In place: the inverse of `pads_on_uint8` (`Q -> Pad -> DQ` back to `Pad -> Q -> DQ`), for TensorRT, whose
    padding on int8 tensors this project has not verified. Returns how many Pads moved."""
    graph = model.graph
    readers = readers_of(graph)
    producer = producers_of(graph)
    moved = 0
    for pad in [n for n in graph.node if n.op_type == "Pad"]:
        q = producer.get(pad.input[0])
        if q is None or q.op_type != "QuantizeLinear" or readers.get(q.output[0]) != [pad]:
            continue
        _swap(graph, q, pad)
        moved += 1
    return moved


def _swap(graph: onnx.GraphProto, first: onnx.NodeProto, second: onnx.NodeProto) -> None:
    """`x -> first -> second -> readers` becomes `x -> second -> first -> readers` (`first` read only by
    `second`), keeping the name of the tensor the readers see; the tensor between changes type, so its recorded
    type (value_info) is dropped."""
    source, between, result = first.input[0], first.output[0], second.output[0]
    i, j = (next(k for k, n in enumerate(graph.node) if n.name == node.name) for node in (first, second))
    early, late = onnx.NodeProto(), onnx.NodeProto()
    early.CopyFrom(second)
    late.CopyFrom(first)
    early.input[0], early.output[0] = source, between
    late.input[0], late.output[0] = between, result
    graph.node[i].CopyFrom(early)  # topological order: the second node now runs where the first did
    graph.node[j].CopyFrom(late)
    for info in [v for v in graph.value_info if v.name == between]:
        graph.value_info.remove(info)
