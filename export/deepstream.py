"""DeepStream nvtracker ReID files from an export folder (`hicmd export --deepstream DIR`).

NvDCF / NvDeepSORT crop each tracked object, scale it to `inferDims`, compute `netScaleFactor * (pixel - offsets)`
as float and run a TensorRT engine built from `onnxFile`, reading one feature vector per object (`reidFeatureSize`).
hicmd's graphs take uint8 NHWC and normalise inside, so for DeepStream each embedder gets a twin graph whose input is
the float tensor right after that Cast (raw 0..255 pixels: offsets 0, netScaleFactor 1, the graph's own mean/std
stay inside) and whose only output is the embedding. Writes, per modality:

    DIR/hicmd_rgb_reid.onnx     DIR/config_tracker_hicmd_rgb.yml   (a ReID section to merge into the NvDCF config)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import onnx
from onnx import TensorProto, helper

from hicmd.runtime.atomic import write_atomically
from hicmd.runtime.manifest import Manifest, load_manifest
from hicmd.modality import MODALITIES

__all__ = ["REID_KEYS", "deepstream_graph", "mirrored_graph", "reid_section", "write_deepstream"]

# the ReID keys NvMultiObjectTracker reads that hicmd sets (DeepStream 6.2-7.x tracker configs)
REID_KEYS = ("reidType", "batchSize", "workspaceSize", "reidFeatureSize", "reidHistorySize", "inferDims",
             "networkMode", "inputOrder", "colorFormat", "offsets", "netScaleFactor", "keepAspc",
             "addFeatureNormalization", "onnxFile", "modelEngineFile")
_NETWORK_MODE = {"fp32": 0, "fp16": 1, "int8": 2}


def deepstream_graph(model: onnx.ModelProto, input_name: str, output: str = "embedding") -> tuple[onnx.ModelProto, str]:
    """The graph with its uint8 input (and the Transpose/Cast after it) replaced by the float tensor the Cast made,
    and only `output` left. Returns (graph, "NCHW" or "NHWC": the new input's layout)."""
    graph = model.graph
    by_input: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            by_input.setdefault(name, []).append(node)
    tensor, removed, layout = input_name, [], "NHWC"
    while True:
        users = by_input.get(tensor, [])
        if len(users) != 1 or users[0].op_type not in ("Transpose", "Cast"):
            raise ValueError(f"{graph.name}: expected {input_name} -> [Transpose] -> Cast(float), found "
                             f"{[n.op_type for n in users]} after {tensor}")
        node = users[0]
        removed.append(node)
        if node.op_type == "Transpose":
            perm = next(list(a.ints) for a in node.attribute if a.name == "perm")
            if perm != [0, 3, 1, 2]:
                raise ValueError(f"{graph.name}: unexpected Transpose perm {perm} after the input")
            layout = "NCHW"
        elif next(a.i for a in node.attribute if a.name == "to") == TensorProto.FLOAT:
            float_tensor = node.output[0]
            break
        else:
            raise ValueError(f"{graph.name}: the input is cast to a type other than float; use the FP32 graph")
        tensor = node.output[0]
    old = next(i for i in graph.input if i.name == input_name)
    n, h, w, c = (d.dim_param or d.dim_value for d in old.type.tensor_type.shape.dim)
    shape = [n, c, h, w] if layout == "NCHW" else [n, h, w, c]
    new = onnx.ModelProto()
    new.CopyFrom(model)
    g = new.graph
    keep = [node for node in g.node if all(node.output != r.output for r in removed)]
    for node in keep:  # consumers of the Cast's output now read the new input
        node.input[:] = ["input" if x == float_tensor else x for x in node.input]
    del g.input[:]
    g.input.append(helper.make_tensor_value_info("input", TensorProto.FLOAT, shape))
    outputs = [o for o in g.output if o.name == output]
    if not outputs:
        raise ValueError(f"{graph.name} has no output {output!r}")
    del g.output[:]
    g.output.extend(outputs)
    needed, kept = {output}, []
    for node in reversed(keep):  # drop what only fed the other outputs
        if any(o in needed for o in node.output):
            kept.append(node)
            needed.update(node.input)
    del g.node[:]
    g.node.extend(reversed(kept))
    used = {x for node in kept for x in node.input}
    inits = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(inits)
    onnx.checker.check_model(new)
    return new, layout


def mirrored_graph(model: onnx.ModelProto, layout: str, output: str = "embedding") -> onnx.ModelProto:
    """A DeepStream graph (`deepstream_graph`) that embeds each crop as seen and mirrored left-right and returns the
    L2-normalised sum, as hicmd's runtime does for a model folder exported with `mirror` (runtime/embedder.py):
    nvtracker runs one graph per crop and never mirrors, so the mirroring goes inside. The graph's body runs twice
    (its copy shares the weights) rather than on a batch of 2N, so nothing operates across the batch axis."""
    new = onnx.ModelProto()
    new.CopyFrom(model)
    g = new.graph
    (image,) = g.input
    body = list(g.node)
    produced = {o for node in body for o in node.output}
    twin = {image.name: "mirror/input", **{o: f"mirror/{o}" for o in produced}}
    copies = []
    for node in body:
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        copy.name = f"mirror/{node.name}" if node.name else ""  # unnamed nodes may stay unnamed
        copy.input[:] = [twin.get(x, x) for x in node.input]  # weights and constants stay shared
        copy.output[:] = [twin[x] for x in node.output]
        copies.append(copy)
    for node in body:  # the graph's own embedding becomes one of the two summed
        node.output[:] = ["seen/" + output if x == output else x for x in node.output]
    w_axis = 3 if layout == "NCHW" else 2
    g.initializer.extend([helper.make_tensor(name, TensorProto.INT64, [1], [value]) for name, value in (
        ("mirror/starts", -1), ("mirror/ends", -2 ** 63), ("mirror/axes", w_axis), ("mirror/steps", -1))])
    g.initializer.append(helper.make_tensor("mirror/eps", TensorProto.FLOAT, [], [1e-12]))
    flip = helper.make_node("Slice", [image.name, "mirror/starts", "mirror/ends", "mirror/axes", "mirror/steps"],
                            ["mirror/input"], name="mirror/flip")
    combine = [
        helper.make_node("Add", ["seen/" + output, f"mirror/{output}"], ["sum/embedding"], name="sum/add"),
        helper.make_node("ReduceL2", ["sum/embedding"], ["sum/norm"], name="sum/norm", axes=[1], keepdims=1),
        helper.make_node("Max", ["sum/norm", "mirror/eps"], ["sum/safe_norm"], name="sum/safe_norm"),
        helper.make_node("Div", ["sum/embedding", "sum/safe_norm"], [output], name="sum/normalise"),
    ]
    del g.node[:]
    g.node.extend([*body, flip, *copies, *combine])
    onnx.checker.check_model(new, full_check=True)
    return new


def reid_section(manifest: Manifest, onnx_file: str, layout: str, mode: str = "fp16",
                 batch: int = 100) -> dict[str, Any]:
    spec = manifest.input
    return {
        "reidType": 2,  # 1 NvDeepSORT, 2 re-association (NvDCF), 3 both: pick what your tracker config uses
        "batchSize": batch, "workspaceSize": 1000,
        "reidFeatureSize": manifest.embedding_dim, "reidHistorySize": 100,
        "inferDims": [3, spec.height, spec.width],  # always C, H, W; inputOrder gives the layout
        "networkMode": _NETWORK_MODE[mode],  # TensorRT precision DeepStream builds the engine in
        "inputOrder": 0 if layout == "NCHW" else 1, "colorFormat": 0 if spec.color == "RGB" else 1,
        "offsets": [0.0, 0.0, 0.0], "netScaleFactor": 1.0,  # raw pixels: mean/std are inside the graph
        "keepAspc": 0,  # hicmd stretches crops to the input size, as in training
        "addFeatureNormalization": 1,  # the graph L2-normalises already; harmless and keeps cosine scores
        "onnxFile": onnx_file,
        "modelEngineFile": f"{onnx_file}_b{batch}_gpu0_{mode}.engine",  # DeepStream builds it there on first run
    }


def _yaml(section: dict[str, Any], header: str) -> str:
    def value(v: Any) -> str:
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return f'"{v}"' if isinstance(v, str) else str(v)

    return header + "ReID:\n" + "".join(f"  {k}: {value(v)}\n" for k, v in section.items())


def write_deepstream(export_dir: str | Path, out: str | Path, mode: str = "fp16",
                     mirror: bool | None = None) -> list[Path]:
    """Write the DeepStream ReID graph (from the FP32 ONNX; TensorRT builds it in `mode`: fp32, fp16 or int8, the
    last needing a calibration file) and config for each modality; returns the files written. `mirror` (None: as
    the model folder says): the graph embeds each crop mirrored too, as the stream does and the gates assume."""
    if mode not in _NETWORK_MODE:
        raise ValueError(f"DeepStream network mode {mode!r}: use fp32, fp16 or int8")
    manifest = load_manifest(export_dir)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    mirrored = manifest.mirror if mirror is None else mirror
    written = []
    for modality in MODALITIES:
        artifact = manifest.pick("embedder", modality, "fp32", "onnx")
        graph, layout = deepstream_graph(onnx.load(str(manifest.path(artifact))), manifest.input.name)
        if mirrored:
            graph = mirrored_graph(graph, layout)
        onnx_path = out / f"hicmd_{modality}_reid.onnx"
        config_path = out / f"config_tracker_hicmd_{modality}.yml"
        header = (f"# hicmd {modality} embedder for DeepStream nvtracker (from {artifact.file}, built as {mode}"
                  f"{'; each crop embedded as seen and mirrored' if mirrored else ''}).\n"
                  f"# Merge this ReID section into your NvDCF / NvDeepSORT tracker config (e.g. DeepStream's\n"
                  f"# config_tracker_NvDCF_accuracy.yml). Recent DeepStream resolves relative paths against the\n"
                  f"# config file's folder; older releases need absolute paths here.\n")
        written.append(write_atomically(onnx_path, graph.SerializeToString()))  # under 2 GB: one protobuf
        written.append(write_atomically(config_path, _yaml(reid_section(manifest, onnx_path.name, layout, mode),
                                                           header)))
    return written
