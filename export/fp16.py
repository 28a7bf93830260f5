"""Mixed-precision (FP16) ONNX graphs for strongly typed TensorRT builds (docs/reference/deployment.md §3).

onnxconverter-common's `convert_float_to_float16` does the conversion with `keep_io_types=True` (inputs and
outputs stay float32 / uint8). What stays FP32, and why:

- op types that overflow or lose too much in FP16: InstanceNormalization (encoder IN and AdaIN statistics),
  reductions (ReduceMean / ReduceSum / ReduceL2 / ReduceProd: GAP, L2 norms), Pow, Sqrt, Div, Clip and Expand
  (the L2-normalisation chain), Resize (its scales must stay float32, onnxconverter-common#207);
- the graph's own Cast nodes, by name (so no Cast keeps `to=FLOAT` while its output is re-typed FP16, the
  "elem type differs" error TensorRT 11 rejects; not by op type: the converter's inserted Casts would then be
  blocked again, without end);
- node scopes: every node of the custom MUNIT LayerNorm modules (Sub/Mul/Add around the reductions too), the
  uint8 -> float normalisation prefix, and modules that set `keep_fp32 = True` (EfficientNet-Lite0's depthwise
  convolutions: with BatchNorm folded in, their FP16 rounding made two thirds of the edge embedder's FP16 error).

Convolutions, Gemm, LeakyReLU/ReLU, Pad, Add/Mul of the residual and AdaIN affine paths run in FP16.
The result must pass onnx.checker full_check and strict typed shape inference, or the conversion fails.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import onnx
from torch import nn

from hicmd.model.blocks import LayerNorm

__all__ = ["FP32_OPS", "fp32_scopes", "blocked_nodes", "convert_fp16"]

FP32_OPS = (
    "InstanceNormalization", "ReduceMean", "ReduceSum", "ReduceL2", "ReduceProd", "Pow", "Sqrt", "Div", "Clip",
    "Expand", "Resize",
)


def _unqualified(name: str) -> str:
    """torch.onnx's per-level scope name: the qualified name from its last non-numeric atom on."""
    atoms = name.split(".")
    for i in range(len(atoms) - 1, -1, -1):
        if not atoms[i].isdigit():
            return ".".join(atoms[i:])
    return name


def _scope(qualified: str) -> str:
    """Module `decoder.up.1.2` -> ONNX node-name prefix `/decoder/up/up.1/up.1.2/` (TorchScript exporter)."""
    atoms = qualified.split(".")
    return "/" + "/".join(_unqualified(".".join(atoms[: i + 1])) for i in range(len(atoms))) + "/"


def fp32_scopes(wrapper: nn.Module) -> list[str]:
    """Node-name prefixes of the modules of an exported wrapper that must stay FP32."""
    scopes = [_scope(name) for name, m in wrapper.named_modules()
              if isinstance(m, LayerNorm) or getattr(m, "keep_fp32", False)]
    if hasattr(wrapper, "preprocess"):
        scopes.append("/preprocess/")
    return scopes


def blocked_nodes(model: onnx.ModelProto, scopes: list[str]) -> list[str]:
    """Names of the graph's nodes inside any of `scopes`, plus its Cast nodes."""
    return [n.name for n in model.graph.node if n.op_type == "Cast" or any(n.name.startswith(s) for s in scopes)]


def _unshare_initializers(model: onnx.ModelProto, blocked: set[str]) -> None:
    """Give FP32-kept nodes their own copy of initializers they share with FP16 nodes.

    Constant folding deduplicates equal tensors (e.g. all-zero conv biases and InstanceNorm biases); the converter
    keeps an initializer FP32 if any blocked node reads it, which would leave the FP16 Conv with an FP32 bias.
    """
    inits = {t.name: t for t in model.graph.initializer}
    readers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            if name in inits:
                readers.setdefault(name, []).append(node)
    for name, nodes in readers.items():
        kept = [n for n in nodes if n.op_type in FP32_OPS or n.name in blocked]
        if not kept or len(kept) == len(nodes) or inits[name].data_type != onnx.TensorProto.FLOAT:
            continue
        copy = onnx.TensorProto()
        copy.CopyFrom(inits[name])
        copy.name = f"{name}_fp32"
        model.graph.initializer.append(copy)
        for node in kept:
            node.input[:] = [copy.name if i == name else i for i in node.input]


def _restore_fp32_outputs(mixed: onnx.ModelProto) -> None:
    """keep_io_types, finished: onnxconverter-common 1.16 re-types a graph output to FP16 when a *blocked* (FP32)
    node produces it (it appends a Cast to FP16 and renames the FP32 tensor). Give the graph output the FP32 tensor
    back; the FP16 copy keeps feeding the graph's own FP16 consumers (e.g. H reading the prototype)."""
    graph = mixed.graph
    for out in graph.output:
        if out.type.tensor_type.elem_type != onnx.TensorProto.FLOAT16:
            continue
        producer = next(n for n in graph.node if out.name in n.output)
        to = next((a.i for a in producer.attribute if a.name == "to"), None)
        if producer.op_type == "Cast" and to == onnx.TensorProto.FLOAT16:
            fp32, fp16 = producer.input[0], f"{out.name}_fp16"
            for node in graph.node:  # FP16 readers of the output -> the Cast's renamed output
                node.input[:] = [fp16 if i == out.name else i for i in node.input]
            producer.output[:] = [fp16]
            for node in graph.node:  # the FP32 tensor becomes the graph output
                node.input[:] = [out.name if i == fp32 else i for i in node.input]
                node.output[:] = [out.name if o == fp32 else o for o in node.output]
        else:  # an FP16 node produced it: cast up at the very end
            fp16 = f"{out.name}_fp16"
            for node in graph.node:
                node.input[:] = [fp16 if i == out.name else i for i in node.input]
                node.output[:] = [fp16 if o == out.name else o for o in node.output]
            graph.node.append(onnx.helper.make_node("Cast", [fp16], [out.name], to=onnx.TensorProto.FLOAT,
                                                    name=f"{out.name}_to_fp32"))
        out.type.tensor_type.elem_type = onnx.TensorProto.FLOAT
    kept = [v for v in graph.value_info if v.name not in {o.name for o in graph.output}]
    del graph.value_info[:]
    graph.value_info.extend(kept)


def convert_fp16(src: str | Path, dst: str | Path, scopes: list[str]) -> onnx.ModelProto:
    """FP32 ONNX at `src` -> mixed-precision ONNX at `dst`, checked with full_check + strict type inference."""
    from onnxconverter_common import float16

    from hicmd.export.graphs import check_onnx

    model = onnx.load(str(src))
    nodes = blocked_nodes(model, scopes)
    # none matching means the exporter's scope naming changed: refuse rather than convert everything
    if scopes and not any(n.startswith(s) for n in nodes for s in scopes):
        raise RuntimeError(f"none of the FP32 scopes {scopes[:3]} matched a node of {src}")
    _unshare_initializers(model, set(nodes))
    with warnings.catch_warnings():  # one warning per weight below 1e-7 (set to +-1e-7): noise, not news
        warnings.simplefilter("ignore", UserWarning)
        mixed = float16.convert_float_to_float16(model, keep_io_types=True, op_block_list=list(FP32_OPS),
                                                 node_block_list=nodes)
    _restore_fp32_outputs(mixed)
    check_onnx(mixed)
    onnx.save(mixed, str(dst))
    return mixed
