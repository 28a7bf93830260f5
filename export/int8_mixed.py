"""Two rules that make an INT8 embedder graph hold where plain post-training quantization does not (the `edge`
preset's ImageNet EfficientNet-Lite0; README, INT8 section, "Two rules"). Both are general: one reads the graph's
structure, the other measures.

1. Activation-bounded ranges (always). A convolution whose output only feeds a Clip with constant bounds (ReLU6)
   is quantized on [-b, b], b = the larger bound's magnitude, instead of its calibrated range: the Clip passes
   nothing outside it, so the result is the same and the grid is finer. Calibration sees the pre-activation, which
   in a BatchNorm-folded ImageNet network reaches -78 .. +78 where ReLU6 keeps 0 .. 6: on that range the ReLU6
   outputs got ~10 levels (measured, edge: embedding cosine to FP32 0.86 -> 0.977 with the rule on a 6-iteration
   model, 0.964 -> 0.996 on a 10-minute one). The bound is read from the graph, so the rule needs no calibration
   data; where the calibrated range is already inside the bound the rule widens it (with the Clip outputs at 6,
   as in Lite0, the calibrated and the bounded ranges gave the same cosines).
2. Measured mixed precision (only when the all-INT8 graph misses the target on calibration crops). Each
   quantized node's loss, 1 - mean cosine to FP32 with only that node quantized, is measured; small quantization
   errors add up, so the least sensitive nodes are quantized while their summed loss fits the target's budget,
   bisected down until the measured graph meets the target; the rest stay float. The target is half the INT8
   gates' error budget (mean cosine >= 0.9975, min >= 0.99), so the held-out gates keep room; the gates still
   judge the result. "Float" means float weights and bias, and no Q/DQ pair around the node that no quantized
   node produces or reads.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from hicmd.export.int8_fusion import pads_back_on_float, producers_of, readers_of

__all__ = ["activation_bounded_ranges", "float_nodes", "keep_sensitive_float", "float_convolutions_of",
           "SENSITIVITY_CROPS"]

SENSITIVITY_CROPS = 64  # of the calibration crops: enough to rank the convolutions, cheap enough to try each alone
_QDQ = ("QuantizeLinear", "DequantizeLinear")


def _constants(model: onnx.ModelProto) -> dict[str, onnx.TensorProto]:
    values = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            values[node.output[0]] = node.attribute[0].t
    return values


def activation_bounded_ranges(model: onnx.ModelProto, symmetric: bool = True) -> dict[str, list[dict[str, Any]]]:
    """ONNX Runtime TensorQuantOverrides (rule 1) for every Conv whose output is read by one Clip with constant
    bounds (lo, hi) only: {conv output: [{"rmin": -b, "rmax": b}]}, b = max(|lo|, |hi|), or the bounds themselves
    for asymmetric activations."""
    constants, readers = _constants(model), readers_of(model.graph)
    graph_outputs = {o.name for o in model.graph.output}
    overrides = {}
    for node in model.graph.node:
        conv_readers = readers.get(node.output[0], []) if node.op_type == "Conv" else []
        if len(conv_readers) != 1 or conv_readers[0].op_type != "Clip" or node.output[0] in graph_outputs:
            continue
        clip = conv_readers[0]
        bounds = [constants.get(name) for name in clip.input[1:3] if name]
        if len(bounds) != 2 or any(b is None for b in bounds):
            continue  # an open-ended or computed bound: the calibrated range stays
        low, high = (float(numpy_helper.to_array(b)) for b in bounds)
        if symmetric:
            low, high = -max(abs(low), abs(high)), max(abs(low), abs(high))
        overrides[node.output[0]] = [{"rmin": np.float32(low), "rmax": np.float32(high)}]
    return overrides


def _quantized_nodes(graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    """Nodes (not Q/DQ) with a weight read through a DequantizeLinear of a constant."""
    constants = {t.name for t in graph.initializer}
    dequantized = {n.output[0] for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] in constants}
    return [n for n in graph.node if n.op_type not in _QDQ and any(i in dequantized for i in n.input[1:])]


def float_convolutions_of(model: onnx.ModelProto) -> list[str]:
    """The Conv nodes of a Q/DQ graph whose weights are float (kept float by rule 2)."""
    quantized = {n.name for n in _quantized_nodes(model.graph)}
    return [n.name for n in model.graph.node if n.op_type == "Conv" and n.name not in quantized]


def float_nodes(qdq: onnx.ModelProto, fp32: onnx.ModelProto, names: set[str]) -> onnx.ModelProto:
    """`qdq` with the quantized nodes `names` back in float: the FP32 graph's weights and bias (nodes keep their
    names through quantization), the input taken before its Q/DQ pair, the output's Q/DQ pair dropped unless a
    quantized node still reads it. Unused Q/DQ nodes and constants are removed."""
    model = onnx.ModelProto()
    model.CopyFrom(qdq)
    pads_back_on_float(model)  # an exported graph pads on uint8 (int8_fusion): back to Pad -> Q -> DQ, exact
    graph = model.graph
    original = {n.name: n for n in fp32.graph.node}
    fp32_constants = {t.name: t for t in fp32.graph.initializer}
    producer = producers_of(graph)
    for node in graph.node:
        if node.name not in names:
            continue
        for i in range(1, len(node.input)):
            constant = onnx.TensorProto()
            constant.CopyFrom(fp32_constants[original[node.name].input[i]])
            constant.name = f"{constant.name}_float"
            graph.initializer.append(constant)
            node.input[i] = constant.name
        dq = producer.get(node.input[0])
        q = producer.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
        if q is not None and q.op_type == "QuantizeLinear":
            node.input[0] = q.input[0]
    _drop_unused_pairs(graph)
    _prune(graph)
    return model


def _drop_unused_pairs(graph: onnx.GraphProto) -> None:
    """Bypass every activation Q/DQ pair that neither a quantized node produces (its output grid, which ONNX
    Runtime fuses into QLinearConv) nor a quantized node reads: what is left of the float nodes' pairs."""
    constants = {t.name for t in graph.initializer}
    quantized = {n.name for n in _quantized_nodes(graph)}
    producer = producers_of(graph)
    readers = readers_of(graph)
    graph_outputs = {o.name for o in graph.output}
    for q in [n for n in graph.node if n.op_type == "QuantizeLinear" and n.input[0] not in constants]:
        source = producer.get(q.input[0])
        dqs = readers.get(q.output[0], [])
        if (source is not None and source.name in quantized) or any(
                d.op_type != "DequantizeLinear" or d.output[0] in graph_outputs for d in dqs):
            continue
        if any(r.name in quantized for d in dqs for r in readers.get(d.output[0], [])):
            continue
        for d in dqs:
            for reader in readers.get(d.output[0], []):
                for i, name in enumerate(reader.input):
                    if name == d.output[0]:
                        reader.input[i] = q.input[0]


def _prune(graph: onnx.GraphProto) -> None:
    """Drop Q/DQ nodes nothing reads, then constants nothing reads."""
    outputs = {o.name for o in graph.output}
    while True:
        read = {i for n in graph.node for i in n.input} | outputs
        dead = [n for n in graph.node if n.op_type in _QDQ and not any(o in read for o in n.output)]
        if not dead:
            break
        for node in dead:
            graph.node.remove(node)
    read = {i for n in graph.node for i in n.input}
    for constant in [t for t in graph.initializer if t.name not in read]:
        graph.initializer.remove(constant)


def _embed(model: onnx.ModelProto, images: np.ndarray) -> np.ndarray:
    from hicmd.runtime.cpu import cpu_session

    session = cpu_session(model.SerializeToString())
    out = np.concatenate([session.run(["embedding"], {session.get_inputs()[0].name: images[i:i + 32]})[0]
                          for i in range(0, len(images), 32)])
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def _target() -> tuple[float, float]:
    """Half the INT8 gates' error budget: (mean cosine, min cosine) the choice aims for."""
    from hicmd.export.parity import INT8_MEAN_COSINE, INT8_MIN_COSINE

    return 1.0 - (1.0 - INT8_MEAN_COSINE) / 2, 1.0 - (1.0 - INT8_MIN_COSINE) / 2


def keep_sensitive_float(qdq: onnx.ModelProto, fp32: onnx.ModelProto,
                         images: np.ndarray) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """Rule 2: `qdq` as is when its embeddings of `images` (uint8 crops) meet the target against `fp32`'s, else
    with its most sensitive quantized nodes in float, as few as meet it. Returns the graph and its record for the
    manifest (the target, the all-INT8 and the final cosines, each float node with its measured loss).

    Each node's loss is 1 - mean cosine with only that node quantized. Small quantization errors add up (measured
    on the edge model: the summed losses predicted the loss of 10..70 quantized nodes within 25 %, always above),
    so the least sensitive nodes are quantized while their summed loss fits the target's budget, and the count is
    bisected down if the measured graph still misses (its min cosine, or the sum's error)."""
    picks = np.linspace(0, len(images) - 1, min(SENSITIVITY_CROPS, len(images))).round().astype(int)
    images = np.ascontiguousarray(images[picks])
    reference = _embed(fp32, images)
    mean_target, min_target = _target()

    def cosines(model: onnx.ModelProto) -> np.ndarray:
        return (reference * _embed(model, images)).sum(1)

    def meets(c: np.ndarray) -> bool:
        return bool(c.mean() >= mean_target and c.min() >= min_target)

    base = cosines(qdq)
    record: dict[str, Any] = {
        "rule": "only when the all-INT8 graph misses the target: each quantized node's loss (1 - mean cosine to "
                "FP32 with only it quantized) on calibration crops; the least sensitive are quantized while their "
                "summed loss fits the target, bisected down until the graph meets it; the rest stay float",
        "target": {"mean": mean_target, "min": min_target}, "crops": len(images),
        "all_int8": {"mean": float(base.mean()), "min": float(base.min())}, "float": [],
    }
    if meets(base):
        record["cosine"] = record["all_int8"]
        return qdq, record
    names = [n.name for n in _quantized_nodes(qdq.graph)]
    loss = {name: float(1.0 - cosines(float_nodes(qdq, fp32, set(names) - {name})).mean()) for name in names}
    order = sorted(names, key=loss.get)  # the cheapest to quantize first
    tried: dict[int, tuple[onnx.ModelProto, np.ndarray]] = {}

    def attempt(count: int) -> bool:  # the first `count` of `order` quantized, the rest float
        if count not in tried:
            model = float_nodes(qdq, fp32, set(order[count:]))
            tried[count] = (model, cosines(model))
        return meets(tried[count][1])

    high = int(np.searchsorted(np.cumsum([loss[n] for n in order]), 1.0 - mean_target, side="right"))
    low = 0  # everything float: FP32 itself
    if not attempt(high):
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (middle, high) if attempt(middle) else (low, middle)
        high = low
        attempt(high)
    model, final = tried[high]
    record["float"] = [{"node": name, "loss_alone": loss[name]} for name in order[high:]]
    record["quantized"] = high
    record["cosine"] = {"mean": float(final.mean()), "min": float(final.min())}
    return model, record
