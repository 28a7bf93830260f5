"""The deployable graphs: torch wrapper modules around HiCMD and their FP32 ONNX export.

Embedder (one per modality): `images` uint8 (N, H, W, 3) RGB -> `embedding` (N, D) L2-normalised, `prototype`
(N, C, H/4, W/4), `attribute` (N, A). Cast, ImageNet normalisation and NHWC -> NCHW happen inside the graph, so
the runtime only resizes and stacks crops. alpha is folded into two constants and the test-time Linear + BN1d
into one Linear (docs/reference/model.md §19).

Generator: (`prototype`, `attribute`) -> `image` (N, 3, H, W) float32 RGB in 0..255, the decoder with its AdaIN
MLPs inside and the de-normalisation + clamp at the end.

Export uses the TorchScript-based exporter (`dynamo=False`): the dynamo exporter needs onnxscript, which is not a
dependency of hicmd, and the legacy path gives plain opset-17 graphs with a dynamic batch axis from
`dynamic_axes`. The example batch is 2, never 1, so nothing batch-1-specific can be traced in.
"""

from __future__ import annotations

import copy
import io
import tempfile
import warnings
from pathlib import Path

import onnx
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hicmd.model import HiCMD
from hicmd.model.blocks import LayerNorm

__all__ = [
    "EMBEDDER_INPUT", "EMBEDDER_OUTPUTS", "GENERATOR_INPUTS", "GENERATOR_OUTPUT",
    "EmbedderGraph", "GeneratorGraph", "StagedLayerNorm", "fuse_linear_bn", "export_embedder", "export_generator",
    "fold_constants",
    "check_onnx",
]

EMBEDDER_INPUT = "images"
EMBEDDER_OUTPUTS = ("embedding", "prototype", "attribute")
GENERATOR_INPUTS = ("prototype", "attribute")
GENERATOR_OUTPUT = "image"
EXAMPLE_BATCH = 2


def fuse_linear_bn(linear: nn.Linear, bn: nn.BatchNorm1d) -> nn.Linear:
    """One Linear equal to BN(Linear(x)) with BN's running statistics (eval mode)."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    fused = nn.Linear(linear.in_features, linear.out_features)
    with torch.no_grad():
        fused.weight.copy_(linear.weight * scale[:, None])
        fused.bias.copy_((linear.bias - bn.running_mean) * scale + bn.bias)
    return fused


class _Normalise(nn.Module):
    """uint8 NHWC -> float NCHW, (x / 255 - mean) / std written as one multiply-add (constants folded)."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]):
        super().__init__()
        std_t = torch.tensor(std, dtype=torch.float32)
        self.register_buffer("scale", (1.0 / (255.0 * std_t)).view(1, 3, 1, 1))
        self.register_buffer("shift", (-torch.tensor(mean, dtype=torch.float32) / std_t).view(1, 3, 1, 1))

    def forward(self, images: Tensor) -> Tensor:
        x = images.permute(0, 3, 1, 2).to(torch.float32)
        return x * self.scale + self.shift


class EmbedderGraph(nn.Module):
    """One modality's inference path of HiCMD: the same numbers as `model.embed`, export-shaped."""

    def __init__(self, model: HiCMD, modality: str):
        super().__init__()
        cfg = model.cfg
        self.preprocess = _Normalise(cfg.mean, cfg.std)
        self.prototype = model.prototype[modality]
        self.attribute = model.attribute[modality]
        self.h = model.hfl.h
        self.layout = model.layout
        alpha = float(model.hfl.alpha.detach())
        # HFLHead.combine: min(alpha, 1) and max(1 - alpha, 0) as plain numbers.
        self.alpha, self.beta = min(alpha, 1.0), max(1.0 - alpha, 0.0)
        self.head = fuse_linear_bn(model.hfl.bottleneck, model.hfl.bn)

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x = self.preprocess(images)
        p, a = self.prototype(x), self.attribute(x)
        style = self.layout.part(a, "style")
        f0 = torch.cat([self.alpha * F.normalize(self.h(p), dim=1), self.beta * F.normalize(style, dim=1)], dim=1)
        return F.normalize(self.head(f0), dim=1), p, a


class StagedLayerNorm(LayerNorm):
    """The MUNIT LayerNorm's maths with its reductions taken one axis at a time.

    ONNX Runtime's CPU ReduceMean/ReduceSum over C*H*W (a million values in the paper decoder) sums naively: 1e-5
    relative error, 0.006 in 0..255 pixels after the decoder. Reducing W, then H, then C keeps every partial sum short
    and matches PyTorch to ~1e-7. Same parameters, same result; only the graph differs.
    """

    def __init__(self, source: LayerNorm):
        super().__init__(source.gamma.shape[0], source.eps)
        self.gamma, self.beta = source.gamma, source.beta

    def forward(self, x: Tensor) -> Tensor:
        n = x.shape[1] * x.shape[2] * x.shape[3]
        mean = x.mean(3, keepdim=True).mean(2, keepdim=True).mean(1, keepdim=True)
        centred = x - mean
        var = (centred * centred).mean(3, keepdim=True).mean(2, keepdim=True).mean(1, keepdim=True) * (n / (n - 1))
        y = centred / (var.sqrt() + self.eps)
        return y * self.gamma[None, :, None, None] + self.beta[None, :, None, None]


class GeneratorGraph(nn.Module):
    """decode(prototype, attribute) mapped back to 0..255 RGB (a copy of the decoder with staged LayerNorms)."""

    def __init__(self, model: HiCMD):
        super().__init__()
        cfg = model.cfg
        self.decoder = copy.deepcopy(model.decoder)
        for name, module in list(self.decoder.named_modules()):
            if isinstance(module, LayerNorm):
                parent_name, _, child = name.rpartition(".")
                setattr(self.decoder.get_submodule(parent_name), child, StagedLayerNorm(module))
        self.register_buffer("scale", 255.0 * torch.tensor(cfg.std, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("shift", 255.0 * torch.tensor(cfg.mean, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, prototype: Tensor, attribute: Tensor) -> Tensor:
        return (self.decoder(prototype, attribute) * self.scale + self.shift).clamp(0.0, 255.0)


def _export(module: nn.Module, args: tuple[Tensor, ...], inputs: list[str], outputs: list[str], path: Path,
            opset: int) -> onnx.ModelProto:
    buffer = io.BytesIO()
    axes = {name: {0: "batch"} for name in inputs + outputs}
    with torch.no_grad(), warnings.catch_warnings():
        # InstanceNorm without running stats warns "set to train=True"; harmless (docs/reference/deployment.md §8.5).
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), args, buffer, input_names=inputs, output_names=outputs,
                          dynamic_axes=axes, opset_version=opset, do_constant_folding=True, dynamo=False)
    model = fold_constants(onnx.load_from_string(buffer.getvalue()))
    check_onnx(model)
    Path(path).write_bytes(model.SerializeToString())
    return model


def fold_constants(model: onnx.ModelProto) -> onnx.ModelProto:
    """Constant folding and redundant-node removal with ONNX Runtime's *basic* (standard-op only) optimiser.

    The TorchScript exporter leaves each reflect Pad's `pads` as a ConstantOfShape/Concat/Slice/Transpose chain and
    the shared InstanceNorm scale/bias as Identity nodes; TensorRT wants `pads` as an initializer. Basic-level
    rewrites keep every node in the default ONNX domain and keep node names (the FP16 block list needs them).
    """
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.onnx", Path(tmp) / "out.onnx"
        onnx.save(model, str(src))
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(dst)
        ort.InferenceSession(str(src), options, providers=["CPUExecutionProvider"])
        folded = onnx.load(str(dst))
    # ORT lists every domain it knows; keep only those the nodes use.
    used = {n.domain for n in folded.graph.node}
    keep = [o for o in folded.opset_import if o.domain in used or o.domain in ("", "ai.onnx")]
    del folded.opset_import[:]
    folded.opset_import.extend(keep)
    foreign = used - {"", "ai.onnx"}
    if foreign:
        raise RuntimeError(f"constant folding introduced non-standard ops from {sorted(foreign)}")
    folded.producer_name, folded.producer_version = model.producer_name, model.producer_version
    return folded


def export_embedder(model: HiCMD, modality: str, path: str | Path, opset: int = 17) -> onnx.ModelProto:
    """Write the `modality` embedder graph to `path` (checked with onnx.checker full_check)."""
    cfg = model.cfg
    example = torch.randint(0, 256, (EXAMPLE_BATCH, cfg.height, cfg.width, 3), dtype=torch.uint8)
    return _export(EmbedderGraph(model, modality), (example,), [EMBEDDER_INPUT], list(EMBEDDER_OUTPUTS),
                   Path(path), opset)


def export_generator(model: HiCMD, path: str | Path, opset: int = 17) -> onnx.ModelProto:
    """Write the generator graph (decoder + MLPs + de-normalisation) to `path`."""
    cfg = model.cfg
    p = torch.randn(EXAMPLE_BATCH, *cfg.prototype_shape)
    a = torch.randn(EXAMPLE_BATCH, cfg.attribute_dim)
    return _export(GeneratorGraph(model).eval(), (p, a), list(GENERATOR_INPUTS), [GENERATOR_OUTPUT], Path(path), opset)


def check_onnx(model: onnx.ModelProto) -> None:
    """onnx.checker with full_check, then strict typed shape inference (what TensorRT 11's parser needs)."""
    onnx.checker.check_model(model, full_check=True)
    onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
