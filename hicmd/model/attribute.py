"""Attribute encoder E^a (one per modality) and the layout of the attribute code a = [a_s; a_p; a_c].

E^a is a torchvision ResNet (ResNet-50 in `paper`) up to global average pooling. Its submodules keep
torchvision's names (conv1, bn1, layer1..layer4), so ImageNet state dicts load by key.

The code is cut into `chunks` equal pieces (one per decoder AdaIN block); inside each chunk the first half is
the ID-discriminative "style" a_s, the next quarter pose a_p, the last quarter illumination a_c
(docs/reference/model.md §5: chunk k = [0,256) style, [256,384) pose, [384,512) illumination for the paper config).
Slicing is done with reshapes, so it exports to ONNX as Reshape/Slice and keeps ascending index order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

from hicmd.config import ModelConfig

__all__ = ["AttributeLayout", "AttributeEncoder", "make_resnet", "load_imagenet_weights"]

PARTS = ("style", "pose", "illumination")


def make_resnet(cfg: ModelConfig) -> ResNet:
    block = Bottleneck if cfg.backbone == "resnet50" else BasicBlock
    if cfg.backbone not in ("resnet50", "resnet18"):
        raise ValueError(f"backbone {cfg.backbone!r} is not supported; use resnet50 or resnet18")
    return ResNet(block, list(cfg.backbone_layers))


@dataclass(frozen=True)
class AttributeLayout:
    dim: int
    chunks: int

    @property
    def chunk(self) -> int:
        return self.dim // self.chunks

    def offsets(self) -> dict[str, tuple[int, int]]:
        """Offsets of each part inside one chunk."""
        c = self.chunk
        return {"style": (0, c // 2), "pose": (c // 2, 3 * c // 4), "illumination": (3 * c // 4, c)}

    def _view(self, a: Tensor) -> Tensor:
        return a.reshape(a.shape[0], self.chunks, self.chunk)

    def part(self, a: Tensor, name: str) -> Tensor:
        """Gather one part (style | pose | illumination | ex) of attribute codes (N, dim)."""
        if name == "ex":  # ID-excluded attributes a_ex = [a_p; a_c]
            lo, hi = self.chunk // 2, self.chunk
        else:
            lo, hi = self.offsets()[name]
        return self._view(a)[:, :, lo:hi].reshape(a.shape[0], -1)

    def split(self, a: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """a -> (style, pose, illumination)."""
        return tuple(self.part(a, p) for p in PARTS)  # type: ignore[return-value]

    def merge(self, style: Tensor, pose: Tensor, illumination: Tensor) -> Tensor:
        """Inverse of `split`."""
        n = style.shape[0]
        pieces = [t.reshape(n, self.chunks, -1) for t in (style, pose, illumination)]
        return torch.cat(pieces, dim=2).reshape(n, self.dim)

    def compose(self, style: Tensor, pose: Tensor, illumination: Tensor) -> Tensor:
        """Build a code taking each part from a (possibly different) full code: the paper's swaps,
        e.g. s_a' = compose(style=s_b, pose=s_a, illumination=s_a) keeps a's ID-excluded attributes."""
        return self.merge(self.part(style, "style"), self.part(pose, "pose"),
                          self.part(illumination, "illumination"))


class AttributeEncoder(nn.Module):
    """ResNet trunk + global average pooling -> attribute code (N, cfg.attribute_dim)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        net = make_resnet(cfg)
        # Keep torchvision's names; fc is dropped (unused in the reference, 2 M dead parameters).
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return x.mean(dim=(2, 3))


def load_imagenet_weights(module: nn.Module, source: str | Path | dict) -> int:
    """Load torchvision ResNet weights into `module` by key name; returns the number of tensors loaded.

    `source` is a state dict, a local `.pth` file, or "torchvision" (torchvision's weights API; this downloads,
    so only use it when asked). Every key of `module` must be found: a partial load raises.
    """
    if isinstance(source, dict):
        state = source
    elif str(source) == "torchvision":
        from torchvision.models import ResNet50_Weights

        state = ResNet50_Weights.IMAGENET1K_V1.get_state_dict(progress=True)
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"pretrained weights {path} not found")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # garbage, a truncated file, or a pickle that needs more than tensors
            raise ValueError(f"{path} is not a readable weights file ({type(exc).__name__}); give a torchvision "
                             "ResNet .pth state dict") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError("the file holds no state dict of tensors; give a torchvision ResNet .pth state dict")
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    if missing:
        raise ValueError(f"{len(missing)} keys missing from the pretrained weights (e.g. {missing[:3]}): "
                         "they are for another network")
    wrong = [k for k in own if state[k].shape != own[k].shape]
    if wrong:
        raise ValueError(f"shape mismatch for {wrong[:3]}: the weights are for another ResNet")
    module.load_state_dict({k: state[k] for k in own})
    return len(own)
