"""Configuration: frozen dataclasses validated when built, TOML/YAML files and `key=value` overrides.

The presets are in hicmd/presets.py: `paper` (these classes' defaults) is the reference architecture and recipe of
the authors' code (docs/reference/model.md §10); `tiny` and `edge` train on 2 CPU cores in minutes.
Everything here is plain Python: importing it must not import torch.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import typing
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from hicmd.errors import HicmdError

__all__ = [
    "ModelConfig",
    "LossWeights",
    "TrainConfig",
    "Config",
    "ConfigError",
    "load_config",
    "config_from_dict",
    "config_to_dict",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ConfigError(HicmdError, ValueError):
    """A config name, file or override that cannot be used; the message says what to do."""


BACKBONES = ("resnet50", "resnet18", "efficientnet_lite0")
# (attribute code a, H(p)) widths per backbone: ResNet layer4 / layer3 outputs; Lite0's head / stride-16 stage
# (hicmd/model/backbones.py says why H ends there)
BACKBONE_DIMS = {"resnet50": (2048, 1024), "resnet18": (512, 256), "efficientnet_lite0": (1280, 112)}
# ImageNet weights shipped inside a pip package (hicmd/pretrained.py), per backbone they fit
PRETRAINED = {"none": BACKBONES, "imagenet-lite": ("efficientnet_lite0",)}
AMP_MODES = ("none", "bf16", "fp16")
HFL_BATCH = ("per_group", "batched")
SAMPLING = ("image", "identity")


def _check(ok: bool, key: str, value: Any, allowed: str) -> None:
    """Configs are validated when built: a bad value names its key and what is allowed."""
    if not ok:
        raise ConfigError(f"{key}={value!r} is out of range: {allowed}")


def _at_least(obj: Any, section: str, minimum: float, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        _check(value >= minimum, f"{section}.{name}", value, f"use a value >= {minimum:g}")


def _probability(obj: Any, section: str, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        _check(0.0 <= value <= 1.0, f"{section}.{name}", value, "use a probability in [0, 1]")


@dataclass(frozen=True)
class ModelConfig:
    """Network shapes. Defaults are the reference (`paper`) architecture."""

    height: int = 256
    width: int = 128
    encoder_dim: int = 32  # G_dim: stem width; the prototype tensor has 8 * encoder_dim channels
    encoder_residual: int = 4  # residual blocks in the prototype encoder and AdaIN blocks in the decoder
    backbone: str = "resnet50"  # attribute encoder and H: resnet50 | resnet18 (torchvision) | efficientnet_lite0
    backbone_layers: tuple[int, ...] = (3, 4, 6, 3)  # blocks per ResNet stage (ResNet backbones only)
    pretrained: str = "none"  # start of the backbone parts when training: none | imagenet-lite (packaged weights)
    mlp_dim: int = 512  # hidden width of each AdaIN parameter MLP
    mlp_blocks: int = 3
    disc_dim: int = 32
    disc_scales: int = 3
    disc_residual: int = 4
    slope: float = 0.3  # LeakyReLU slope everywhere in G, D and the MLPs
    dropout: float = 0.5
    alpha_init: float = 0.5
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self) -> None:
        m = "model"
        _check(self.backbone in BACKBONES, f"{m}.backbone", self.backbone, f"use one of {', '.join(BACKBONES)}")
        _check(self.backbone in PRETRAINED.get(self.pretrained, ()), f"{m}.pretrained", self.pretrained,
               f"use one of {', '.join(k for k, fits in PRETRAINED.items() if self.backbone in fits)} "
               f"with model.backbone={self.backbone}")
        _check(len(self.backbone_layers) == 4 and all(n >= 1 for n in self.backbone_layers), f"{m}.backbone_layers",
               list(self.backbone_layers), "give 4 ResNet stage depths, each >= 1, e.g. [3, 4, 6, 3]")
        # the prototype encoder's ASPP (dilation 9) and reflect padding need H/4 x W/4 maps of at least 20 x 10
        _check(self.height >= 80 and self.height % 4 == 0, f"{m}.height", self.height, "use a multiple of 4, >= 80")
        _check(self.width >= 40 and self.width % 4 == 0, f"{m}.width", self.width, "use a multiple of 4, >= 40")
        _check(self.encoder_dim >= 8 and self.encoder_dim % 8 == 0, f"{m}.encoder_dim", self.encoder_dim,
               "use a multiple of 8 (the prototype tensor has 8 x encoder_dim channels)")
        _at_least(self, m, 1, "encoder_residual", "mlp_dim", "mlp_blocks", "disc_dim", "disc_scales")
        _at_least(self, m, 0, "disc_residual", "slope")
        _check(0.0 <= self.dropout < 1.0, f"{m}.dropout", self.dropout, "use a value in [0, 1)")
        _probability(self, m, "alpha_init")
        _check(len(self.std) == 3 and all(v > 0 for v in self.std), f"{m}.std", list(self.std),
               "give 3 positive values")

    @property
    def prototype_channels(self) -> int:
        return 8 * self.encoder_dim

    @property
    def prototype_shape(self) -> tuple[int, int, int]:
        return (self.prototype_channels, self.height // 4, self.width // 4)

    @property
    def expansion(self) -> int:
        return 4 if self.backbone == "resnet50" else 1

    @property
    def attribute_dim(self) -> int:
        """Width of the attribute code a (GAP of the backbone's last stage: ResNet layer4)."""
        return BACKBONE_DIMS[self.backbone][0]

    @property
    def h_dim(self) -> int:
        """Width of H(p) (ResNet: the layer3 output)."""
        return BACKBONE_DIMS[self.backbone][1]

    @property
    def embedding_dim(self) -> int:
        """f0 / f1 width: [alpha * n(H(p)); (1 - alpha) * n(a_style)]."""
        return self.h_dim + self.attribute_dim // 2


@dataclass(frozen=True)
class LossWeights:
    """Weights of eq. 1-10 as the reference code sets them (docs/reference/model.md §10, §13)."""

    recon_x: float = 50.0  # same-ID (same-modality) image reconstruction
    cross_x: float = 50.0  # cross-modality reconstruction
    cycle_x: float = 50.0
    recon_code: float = 10.0  # attribute-code reconstruction
    kl: float = 1.0  # L2 pull of ID-excluded codes ("KL" in the code)
    gan: float = 20.0
    r1: float = 0.01  # R1 gradient penalty on real images, inside the D loss
    ce: float = 1.0
    triplet: float = 1.0
    triplet_reg: float = 1.0
    margin: float = 0.5

    def __post_init__(self) -> None:  # 0 switches a term off; a negative weight would reward the error
        _at_least(self, "loss", 0, *(f.name for f in dataclasses.fields(self)))


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation recipe (docs/reference/model.md §10-13). Batch = pos_ids identities x (1 RGB + 1 IR) for ID-PIG,
    plus neg_ids other identities (half RGB, half IR) for HFL."""

    iters: int = 103_000  # the reference: 25 epochs x 4,120 RegDB training images (one pivot per image)
    pos_ids: int = 2
    neg_ids: int = 4
    lr_gen: float = 1e-4
    lr_dis: float = 1e-4
    lr_id: float = 1e-3
    lr_alpha: float = 1e-5
    betas: tuple[float, float] = (0.5, 0.999)
    momentum: float = 0.9
    weight_decay: float = 1e-4
    step_size: int = 25_000  # StepLR x0.5; 25k RegDB, 50k SYSU
    gamma: float = 0.5
    erasing_p: float = 0.5  # random erasing in the HFL branch only
    warmup_id: int = 0  # first iterations train HFL alone (the reference's cnt_warmID; 0 in the paper recipe)
    # In the warm-up both modalities go through the RGB encoders; the IR encoders start as copies of them when it
    # ends. From scratch this stands in for the common ImageNet start the reference gives both encoders.
    warmup_shared: bool = False
    flip: bool = True
    gray_p: float = 0.0  # random grayscale of RGB training images (0 in the paper recipe)
    remap_p: float = 0.0  # random intensity remap of training images, both modalities (0 in the paper recipe)
    seed: int = 777
    log_every: int = 10
    sample_every: int = 1000
    save_every: int = 5000
    amp: str = "none"  # none | bf16 | fp16 (autocast where the device supports it)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    channels_last: bool = False
    max_nonfinite: int = 10  # consecutive skipped steps before training stops
    workers: int = 0
    keep_checkpoints: int = 5  # periodic checkpoints/iter_*.pt kept (newest); 0 keeps all. last.pt is always kept
    # HFL forwards: per_group = the reference (each group G1..G8 through the encoders and H on its own, so BatchNorm
    # statistics are per group); batched = one forward over all rows (faster, other BN statistics)
    hfl_batch: str = "per_group"
    # image = the reference: each training image is the pivot once per epoch, so identities come in proportion to
    # their image count; identity = identities uniformly (hicmd/train/sampler.py)
    sampling: str = "image"

    def __post_init__(self) -> None:
        t = "train"
        _at_least(self, t, 1, "iters", "pos_ids", "step_size", "log_every", "sample_every", "save_every",
                  "max_nonfinite")
        _at_least(self, t, 0, "neg_ids", "warmup_id", "weight_decay", "momentum", "workers", "keep_checkpoints")
        for name in ("lr_gen", "lr_dis", "lr_id", "lr_alpha", "gamma"):
            value = getattr(self, name)
            _check(value > 0, f"{t}.{name}", value, "use a positive number")
        _check(all(0.0 <= b < 1.0 for b in self.betas), f"{t}.betas", list(self.betas), "give two values in [0, 1)")
        _probability(self, t, "erasing_p", "gray_p", "remap_p")
        _check(self.amp in AMP_MODES, f"{t}.amp", self.amp, f"use one of {', '.join(AMP_MODES)}")
        _check(self.sampling in SAMPLING, f"{t}.sampling", self.sampling, f"use one of {', '.join(SAMPLING)}")
        _check(self.hfl_batch in HFL_BATCH, f"{t}.hfl_batch", self.hfl_batch, f"use one of {', '.join(HFL_BATCH)}")
        if self.hfl_batch == "per_group":  # BatchNorm in train mode needs 2+ rows in every group
            _check(self.pos_ids >= 2, f"{t}.pos_ids", self.pos_ids,
                   "per_group HFL needs 2 or more, or train.hfl_batch=batched")
            _check(self.neg_ids == 0 or self.neg_ids >= 4, f"{t}.neg_ids", self.neg_ids,
                   "per_group HFL needs 0 or 4 and more (2+ per modality), or train.hfl_batch=batched")
        _check(self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:") and
               self.device[5:].isdigit(), f"{t}.device", self.device, "use auto, cpu, cuda or cuda:N")


@dataclass(frozen=True)
class Config:
    name: str = "paper"
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossWeights = field(default_factory=LossWeights)
    train: TrainConfig = field(default_factory=TrainConfig)


# --------------------------------------------------------------------------- (de)serialisation


def config_to_dict(cfg: Config) -> dict[str, Any]:
    """Plain JSON-able dict (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item = args[0]
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, item, where) for v in value)
        if len(args) != len(value):
            raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}")
        return tuple(_coerce(v, a, where) for v, a in zip(value, args))
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, (int, str)) or (
            isinstance(value, str) and not value.lstrip("-").replace("_", "").isdigit()
        ):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return int(value)
    if hint is float:
        try:
            number = float(value) if not isinstance(value, bool) else math.nan  # true is no learning rate
        except (TypeError, ValueError):
            number = math.nan
        if not math.isfinite(number):  # inf passed every "> 0" check and trained to NaN weights
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
        return number
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def _build(cls: type, data: dict[str, Any], base: Any, where: str) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    changes = {}
    for key, value in data.items():
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}.{key}: expected a table of settings")
            changes[key] = _build(hint, value, getattr(base, key), f"{where}.{key}")
        else:
            changes[key] = _coerce(value, hint, f"{where}.{key}")
    return replace(base, **changes)


def config_from_dict(data: dict[str, Any], base: Config | None = None) -> Config:
    """Inverse of `config_to_dict`; unknown keys and wrong types raise ConfigError."""
    return _build(Config, data, base or Config(), "config")


def _read_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        from hicmd.presets import PRESETS

        raise ConfigError(f"config file {path} does not exist; use a preset ({', '.join(PRESETS)}) or a .toml/.yaml "
                          "path")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text; give a .toml, .yaml or .json config") from None
    try:
        if path.suffix == ".toml":
            if sys.version_info >= (3, 11):
                import tomllib
            else:  # pragma: no cover
                import tomli as tomllib
            return tomllib.loads(text)
        if path.suffix in (".yaml", ".yml"):
            import yaml

            return yaml.safe_load(text) or {}
        if path.suffix == ".json":
            return json.loads(text)
    except ImportError:
        raise ConfigError(f"reading {path} needs PyYAML: pip install pyyaml") from None
    except Exception as exc:  # parse errors of any of the three formats
        message = " ".join(str(exc).split())  # PyYAML's spans several lines
        raise ConfigError(f"config file {path} is not valid {path.suffix[1:].upper()}: {message}") from None
    raise ConfigError(f"config file {path}: unsupported suffix {path.suffix!r}; use .toml, .yaml or .json")


def _parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.key=value, e.g. train.iters=500")
    key, raw = text.split("=", 1)
    value: Any = raw
    if raw.startswith("[") or raw.startswith("("):
        if not raw.endswith("]" if raw.startswith("[") else ")"):
            raise ConfigError(f"override {text!r}: the list is not closed; write e.g. {key}=[2,2,2]")
        value = [v.strip() for v in raw[1:-1].split(",") if v.strip()]
    return key.strip().split("."), value


def load_config(spec: str = "paper", overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Resolve a preset name or a config file, then apply `section.key=value` overrides.

    A file may name its starting preset with a top-level `base = "tiny"`; its other tables
    (`[model]`, `[loss]`, `[train]`) override that preset.
    """
    from hicmd.presets import PRESETS  # the presets are built from the classes above

    if spec in PRESETS:
        cfg = PRESETS[spec]
    else:
        data = _read_file(Path(spec))
        if not isinstance(data, dict):
            raise ConfigError(f"config file {spec} holds a {type(data).__name__}, not a table of settings "
                              "(e.g. base = \"tiny\" and [train] iters = 500)")
        base_name = data.pop("base", "paper")
        if base_name not in PRESETS:
            raise ConfigError(f"{spec}: base {base_name!r} is not a preset; use one of {', '.join(PRESETS)}")
        data.setdefault("name", Path(spec).stem)
        cfg = config_from_dict(data, PRESETS[base_name])
    merged: dict[str, Any] = {}  # all overrides at once: the result is validated as a whole, in any order
    for text in overrides:
        path, value = _parse_override(text)
        target = merged
        for part in path[:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise ConfigError(f"override {text!r}: {part} is a value, not a section")
        target[path[-1]] = value
    return config_from_dict(merged, cfg) if merged else cfg
