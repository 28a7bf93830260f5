"""Convert the authors' released checkpoint (github.com/bismex/HiCMD) into a hicmd checkpoint.

Their trainer (trainer.py `HICMD.save`) writes one snapshot as three files:

    gen_XXXXXXX.pt  {'a': gen_RGB.state_dict(), 'b': gen_IR.state_dict()}, each enc_att.*, enc_pro.*, dec.*
                    (the decoder is one object shared by both generators, so it is stored twice)
    id_XXXXXXX.pt   {'id': id_classifier, 'backbone_pro': H (a full ResNet-50), 'combine_weight': alpha}
    dis_XXXXXXX.pt  {'a': dis_RGB, 'b': dis_IR}   (training only; optional here)

plus opts.yaml (the run's options; we read `nclasses` and the input size from it as a cross-check).

Their key names follow their module tree with the paper options of set_option.py: `Conv2dBlock` keeps its conv
at `.conv` and its norm at `.norm`, `LinearBlock` its Linear at `.fc`; the prototype encoder (`ResidualEncoder`,
enc_type 2) is model1 (2 convs) + model2 (2 convs) + model3 = [ResBlocks, ASPP(conv1, conv6, conv12, conv18,
fuse)]; the decoder (`ResidualDecoder`, dec_type 2) is model = [ResBlocks(AdaIN), Upsample, conv, Upsample,
conv, conv, conv, conv] + mlp_w1..4 / mlp_b1..4; the discriminator (`Discriminator._make_net2`) is cnns.<scale> =
[5 Conv2dBlocks, 4 ResBlocks, Conv2d]; `ft_resnet` / `ft_resnet2` wrap torchvision at `.model`; `ft_classifier`
holds `ClassBlock` at `.classifier` with add_block = [Linear, BN1d, Dropout], add_block2 = [Linear] (triplet
head) and classifier = [Linear]. The table below is written from that tree; each entry is expanded over our
modules and every tensor's shape is checked, so a file from another architecture fails on its first odd key.

The attribute code needs no rearranging: their att_style_idx / att_pose_idx / att_illum_idx (chunks of 512 =
256 style + 128 pose + 128 illumination) are exactly hicmd.model.AttributeLayout.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, NamedTuple

import torch
from torch import Tensor, nn

from hicmd.config import Config, ModelConfig, config_to_dict
from hicmd.presets import PRESETS
from hicmd.errors import HicmdError
from hicmd.model import HiCMD, MultiScaleDiscriminator
from hicmd.model.blocks import LayerNorm

__all__ = ["ConversionError", "OriginalFiles", "Conversion", "Rule", "rules", "key_map", "find_original_files",
           "convert_original", "save_converted", "to_original"]

SECTIONS = {"gen": ("a", "b"), "id": ("id", "backbone_pro", "combine_weight"), "dis": ("a", "b")}
SIDE = {"rgb": "a", "ir": "b"}  # their gen_RGB / dis_RGB are 'a', gen_IR / dis_IR are 'b'

# Their keys we knowingly drop: enc_att's unused torchvision fc, the AdaIN layers' dummy running-stat buffers,
# and the parts of H that never run (conv1, bn1, layer1, layer4, fc; H starts at layer2 on the prototype).
IGNORED = {
    "gen": re.compile(r"enc_att\.model\.fc\.|dec\.model\.0\.model\.\d+\.model\.\d+\.norm\.running_(mean|var)$"),
    "backbone_pro": re.compile(r"model\.(conv1|bn1|layer1|layer4|fc)\."),
}
# opts.yaml entries the weights cannot reveal (input size, LeakyReLU slope, attribute split) must match the paper
# model; the others would fail as shape errors anyway, but a named option is the clearer message.
OPTS_EXPECTED = {"h": 256, "w": 128, "G_dim": 32, "G_n_residual": 4, "G_mlp_dim": 512, "G_mlp_n_blk": 3,
                 "G_style_resnet_depth": 50, "backbone_pro_resnet_depth": 50, "D_dim": 32, "D_n_scale": 3,
                 "D_n_res": 4, "w_lrelu": 0.3, "att_style_ratio": 0.5, "att_pose_ratio": 0.5}
CLASSIFIER_KEY = "classifier.classifier.0.weight"


class ConversionError(HicmdError, ValueError):
    """An input file that is not (or not the expected part of) the authors' checkpoint; one line, says why."""


class Rule(NamedTuple):
    """One line of the key table. kind: "conv" (their Conv2dBlock -> our ConvBlock), "same" (a module whose
    state-dict suffixes are identical on both sides: torchvision ResNet parts, Linear, BatchNorm1d, Conv2d),
    "param" (one tensor)."""

    file: str  # gen | id | dis
    section: str  # key of the file's top-level dict
    theirs: str
    ours: str
    kind: str


def rules(cfg: ModelConfig) -> list[Rule]:
    """The key table, module by module (docs/reference/model.md §4-9; their module tree in this file's docstring)."""
    out: list[Rule] = []
    for m, side in SIDE.items():
        p = f"prototype.{m}"
        for i, theirs in enumerate(("model1.0", "model1.1", "model2.0", "model2.1")):
            out.append(Rule("gen", side, f"enc_pro.{theirs}", f"{p}.stem.{i}", "conv"))
        for k in range(cfg.encoder_residual):
            for j in (0, 1):
                out.append(Rule("gen", side, f"enc_pro.model3.0.model.{k}.model.{j}", f"{p}.res.{k}.block.{j}", "conv"))
        aspp = "enc_pro.model3.1"
        out.append(Rule("gen", side, f"{aspp}.conv1", f"{p}.aspp.branches.0", "conv"))
        for b, name in enumerate(("conv6", "conv12", "conv18"), start=1):  # dilations 3, 6, 9
            for j in (0, 1):
                out.append(Rule("gen", side, f"{aspp}.{name}.{j}", f"{p}.aspp.branches.{b}.{j}", "conv"))
        out.append(Rule("gen", side, f"{aspp}.fuse", f"{p}.aspp.fuse", "conv"))
        out.append(Rule("gen", side, "enc_att.model", f"attribute.{m}", "same"))
        for s in range(cfg.disc_scales):
            d, theirs = f"discriminator.{m}.nets.{s}", f"cnns.{s}"
            for i in range(5):
                out.append(Rule("dis", side, f"{theirs}.{i}", f"{d}.{i}", "conv"))
            for k in range(5, 5 + cfg.disc_residual):
                for j in (0, 1):
                    out.append(Rule("dis", side, f"{theirs}.{k}.model.{j}", f"{d}.{k}.block.{j}", "conv"))
            last = 5 + cfg.disc_residual
            out.append(Rule("dis", side, f"{theirs}.{last}", f"{d}.{last}", "same"))
    # The shared decoder is read from 'a' (the copy in 'b' is checked to be equal).
    for k in range(cfg.encoder_residual):
        for j in (0, 1):
            out.append(Rule("gen", "a", f"dec.model.0.model.{k}.model.{j}", f"decoder.blocks.{k}.conv{j + 1}", "conv"))
        for their_mlp, our_mlp in (("mlp_w", "mlp_w"), ("mlp_b", "mlp_b")):
            for n in range(cfg.mlp_blocks):  # our MLP is Sequential(Linear, LReLU, ..., Linear): Linear n at 2n
                out.append(Rule("gen", "a", f"dec.{their_mlp}{k + 1}.model.{n}.fc", f"decoder.{our_mlp}.{k}.{2 * n}",
                                "same"))
    # dec.model.1 and .3 are the weightless Upsample layers (our up.0 / up.2)
    for theirs, ours in ((2, "up.1"), (4, "up.3"), (5, "head.0"), (6, "head.1"), (7, "head.2")):
        out.append(Rule("gen", "a", f"dec.model.{theirs}", f"decoder.{ours}", "conv"))
    out += [
        Rule("id", "backbone_pro", "model.layer2", "hfl.h.layer2", "same"),
        Rule("id", "backbone_pro", "model.layer3", "hfl.h.layer3", "same"),
        Rule("id", "combine_weight", "multp", "hfl.alpha", "param"),
        Rule("id", "id", "classifier.add_block.0", "hfl.bottleneck", "same"),
        Rule("id", "id", "classifier.add_block.1", "hfl.bn", "same"),
        Rule("id", "id", "classifier.classifier.0", "hfl.classifier", "same"),
        Rule("id", "id", "classifier.add_block2.0", "hfl.triplet", "same"),
    ]
    return out


def _expand(rule: Rule, model: nn.Module) -> Iterator[tuple[str, str]]:
    if rule.kind == "param":
        yield rule.theirs, rule.ours
    elif rule.kind == "same":
        for suffix in model.get_submodule(rule.ours).state_dict():
            yield f"{rule.theirs}.{suffix}", f"{rule.ours}.{suffix}"
    elif rule.kind == "conv":  # find the conv / LayerNorm inside our ConvBlock (its index depends on padding)
        for i, child in enumerate(model.get_submodule(rule.ours)):
            if isinstance(child, nn.Conv2d):
                yield from ((f"{rule.theirs}.conv.{n}", f"{rule.ours}.{i}.{n}") for n in ("weight", "bias"))
            elif isinstance(child, LayerNorm):
                yield from ((f"{rule.theirs}.norm.{n}", f"{rule.ours}.{i}.{n}") for n in ("gamma", "beta"))
    else:  # pragma: no cover
        raise ValueError(f"unknown rule kind {rule.kind!r}")


def key_map(model: HiCMD) -> list[tuple[str, str, str, str]]:
    """(file, section, their key, our key) for every tensor of `model`; raises if one of ours is left out."""
    table = [(r.file, r.section, theirs, ours) for r in rules(model.cfg) for theirs, ours in _expand(r, model)]
    missing = set(model.state_dict()) - {row[3] for row in table}
    if missing:  # a model change the table does not know about: a bug here, not a user error
        raise RuntimeError(f"convert: no source for {len(missing)} hicmd keys, e.g. {sorted(missing)[:3]}")
    return table


# --------------------------------------------------------------------------- files


@dataclass(frozen=True)
class OriginalFiles:
    gen: Path
    id: Path
    dis: Path | None = None
    opts: Path | None = None


def _iteration(path: Path) -> int | None:
    match = re.search(r"_(\d+)\.pt$", path.name)
    return int(match.group(1)) if match else None


def find_original_files(directory: str | Path, iteration: int | None = None) -> OriginalFiles:
    """Pick gen_/id_/dis_XXXXXXX.pt from the authors' checkpoints folder (the latest iteration having both gen
    and id unless `iteration` is given) and opts.yaml from it or its parent (their layout: <run>/opts.yaml,
    <run>/checkpoints/*.pt)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ConversionError(f"--dir {directory} is not a folder; pass the authors' checkpoints/ folder")
    found = sorted(i for p in directory.glob("gen_*.pt") if (i := _iteration(p)) is not None
                   and (directory / f"id_{i:07d}.pt").is_file())
    if not found:
        raise ConversionError(f"{directory} holds no gen_XXXXXXX.pt with a matching id_XXXXXXX.pt")
    if iteration is None:
        iteration = found[-1]
    elif iteration not in found:
        raise ConversionError(f"{directory} has no gen_/id_{iteration:07d}.pt pair; iterations there: "
                              f"{', '.join(map(str, found))}")
    dis = directory / f"dis_{iteration:07d}.pt"
    opts = next((p for p in (directory / "opts.yaml", directory.parent / "opts.yaml") if p.is_file()), None)
    return OriginalFiles(directory / f"gen_{iteration:07d}.pt", directory / f"id_{iteration:07d}.pt",
                         dis if dis.is_file() else None, opts)


def _load(path: Path, what: str) -> dict[str, dict[str, Tensor]]:
    sections = SECTIONS[what]
    if not path.is_file():
        raise ConversionError(f"{what} file {path} not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ConversionError(f"{path} is not a PyTorch checkpoint ({type(exc).__name__}); pass the authors' "
                              f"{what}_XXXXXXX.pt") from None
    if isinstance(obj, dict) and obj.get("format") == "hicmd-checkpoint":
        raise ConversionError(f"{path} is already a hicmd checkpoint; use it directly")
    if not isinstance(obj, dict) or any(not isinstance(obj.get(s), dict) for s in sections):
        have = list(obj)[:5] if isinstance(obj, dict) else type(obj).__name__
        raise ConversionError(f"{path} is not the authors' {what}_XXXXXXX.pt: expected a dict of state dicts "
                              f"{list(sections)}, found {have}")
    return {s: obj[s] for s in sections}


def _read_opts(path: Path) -> dict[str, Any]:
    import yaml

    class Lenient(yaml.SafeLoader):  # their opts may hold python-tagged values we do not need: read as None
        pass

    Lenient.add_multi_constructor("", lambda loader, suffix, node: None)
    try:
        data = yaml.load(path.read_text(), Loader=Lenient)  # noqa: S506 (SafeLoader subclass)
    except (OSError, yaml.YAMLError) as exc:
        raise ConversionError(f"{path} is not a readable YAML file ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise ConversionError(f"{path} is not the authors' opts.yaml (no key: value mapping)")
    return data


# --------------------------------------------------------------------------- conversion


@dataclass
class Conversion:
    model: HiCMD  # eval mode, paper config
    config: Config
    num_classes: int
    iteration: int
    files: OriginalFiles
    copied: int  # tensors taken from the authors' files
    notes: list[str] = field(default_factory=list)  # things the user should know (printed by the CLI)


def _num_classes(files: OriginalFiles, ident: dict[str, dict[str, Tensor]]) -> int:
    weight = ident["id"].get(CLASSIFIER_KEY)
    if not isinstance(weight, Tensor) or weight.dim() != 2:
        raise ConversionError(f"{files.id}: ['id'] has no {CLASSIFIER_KEY} matrix; is it the authors' id_*.pt?")
    n = int(weight.shape[0])
    if files.opts is not None:
        opts = _read_opts(files.opts)
        if "nclasses" in opts and opts["nclasses"] != n:
            raise ConversionError(f"{files.opts} says nclasses {opts['nclasses']} but the classifier in {files.id} "
                                  f"has {n} rows: they come from different runs")
        for key, want in OPTS_EXPECTED.items():
            if key in opts and opts[key] != want:
                raise ConversionError(f"{files.opts}: {key} is {opts[key]!r}, the paper model needs {want!r}; "
                                      "only the paper architecture can be converted")
    return n


def convert_original(files: OriginalFiles, config: Config | None = None) -> Conversion:
    """Read the authors' files and return the same weights as a hicmd model in eval mode. `config` defaults to
    `paper`, the only architecture the authors released; another preset is for tests with small files."""
    cfg = config or PRESETS["paper"]
    loaded = {"gen": _load(files.gen, "gen"), "id": _load(files.id, "id")}
    if files.dis is not None:
        loaded["dis"] = _load(files.dis, "dis")
    paths = {"gen": files.gen, "id": files.id, "dis": files.dis}
    num_classes = _num_classes(files, loaded["id"])

    with torch.device("meta"):  # shapes only: checks the whole file before any real allocation
        shapes = HiCMD(cfg.model, num_classes)
    expected = shapes.state_dict()
    state: dict[str, Tensor] = {}
    used: set[tuple[str, str, str]] = set()
    for file, section, theirs, ours in key_map(shapes):
        if file not in loaded:
            continue  # no dis file: the discriminators get a fresh initialisation below
        where = f"{paths[file]} ['{section}']"
        tensor = loaded[file][section].get(theirs)
        if tensor is None:
            if ours.endswith("num_batches_tracked"):
                continue  # absent in checkpoints of old PyTorch versions; unused at inference
            raise ConversionError(f"{where} lacks {theirs}: not the authors' Hi-CMD file (or a truncated one)")
        if not isinstance(tensor, Tensor) or tensor.shape != expected[ours].shape:
            got = tuple(tensor.shape) if isinstance(tensor, Tensor) else type(tensor).__name__
            raise ConversionError(f"{where} {theirs} has shape {got}, the paper model needs "
                                  f"{tuple(expected[ours].shape)}: the file is from another architecture")
        state[ours] = tensor.to(expected[ours].dtype)
        used.add((file, section, theirs))

    notes = _leftovers(loaded, paths, used)
    iteration = _iteration(files.gen)
    if iteration is not None and _iteration(files.id) not in (None, iteration):
        notes.append(f"{files.gen.name} and {files.id.name} are from different iterations; converted anyway")
    if files.dis is None:
        notes.append("no dis_*.pt given: the discriminators keep their random initialisation (fine for eval, "
                     "export and streaming; not for resuming GAN training)")

    # Every tensor is overwritten, so skip the (slow) random initialisation: allocate the meta model empty.
    model = shapes.to_empty(device="cpu")
    if "dis" not in loaded:
        for m in model.discriminator:
            model.discriminator[m] = MultiScaleDiscriminator(cfg.model)
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected, unexpected
    for key in missing:  # only what the branches above leave out
        assert key.startswith("discriminator.") or key.endswith("num_batches_tracked"), key
        if key.endswith("num_batches_tracked"):
            model.get_buffer(key).zero_()
    return Conversion(model.eval(), cfg, num_classes, iteration or 0, files, len(state), notes)


def _leftovers(loaded: dict, paths: dict, used: set[tuple[str, str, str]]) -> list[str]:
    """Fail on keys we neither used nor know to be unused (extra layers = another architecture); compare the
    two stored copies of the shared decoder."""
    notes = []
    gen = loaded["gen"]
    for file, sections in loaded.items():
        for section, tensors in sections.items():
            ignored = IGNORED.get(section if file == "id" else file)
            for key in tensors:
                if (file, section, key) in used or (ignored is not None and ignored.match(key)):
                    continue
                if file == "gen" and section == "b" and key.startswith("dec."):
                    continue  # second copy of the shared decoder, compared below
                raise ConversionError(f"{paths[file]} ['{section}'] has {key}, which the paper model does not: "
                                      "the file is from another architecture")
    dec_a = {k: v for k, v in gen["a"].items() if k.startswith("dec.")}
    dec_b = {k: v for k, v in gen["b"].items() if k.startswith("dec.")}
    if dec_a.keys() != dec_b.keys() or any(not torch.equal(v, dec_b[k]) for k, v in dec_a.items()):
        notes.append(f"{paths['gen']}: the decoder copies in 'a' and 'b' differ (they are one shared module in "
                     "the authors' code); used 'a'")
    return notes


def save_converted(conversion: Conversion, out: str | Path) -> Path:
    """Write the standard hicmd checkpoint (hicmd.checkpoint format)."""
    from hicmd.checkpoint import save_checkpoint

    files = conversion.files
    names = ", ".join(p.name for p in (files.gen, files.id, files.dis, files.opts) if p is not None)
    return save_checkpoint(out, {
        "config": config_to_dict(conversion.config),
        "num_classes": conversion.num_classes,
        "model": conversion.model.state_dict(),
        "iteration": conversion.iteration,
        "source": f"converted from bismex/HiCMD ({names})",
    })


def to_original(model: HiCMD) -> dict[str, dict[str, dict[str, Tensor]]]:
    """The inverse: `model` as the authors' {'gen', 'id', 'dis'} file contents, including the tensors their
    modules hold but never use (zeros / a fresh ResNet), so the result has their files' full key sets."""
    from hicmd.model.attribute import make_resnet

    ours = model.state_dict()
    out: dict[str, dict[str, dict[str, Tensor]]] = {f: {s: {} for s in SECTIONS[f]} for f in SECTIONS}
    for file, section, theirs, key in key_map(model):
        out[file][section][theirs] = ours[key].clone()
    cfg = model.cfg
    unused = make_resnet(cfg).state_dict()
    for side in ("a", "b"):
        gen = out["gen"][side]
        gen["enc_att.model.fc.weight"] = torch.zeros(1000, cfg.attribute_dim)
        gen["enc_att.model.fc.bias"] = torch.zeros(1000)
        if side == "b":
            gen.update({k: v.clone() for k, v in out["gen"]["a"].items() if k.startswith("dec.")})
        for k in range(cfg.encoder_residual):
            for j in (0, 1):
                norm = f"dec.model.0.model.{k}.model.{j}.norm"
                gen[f"{norm}.running_mean"] = torch.zeros(cfg.prototype_channels)
                gen[f"{norm}.running_var"] = torch.ones(cfg.prototype_channels)
    for key, value in unused.items():
        if not key.startswith(("layer2.", "layer3.")):
            out["id"]["backbone_pro"][f"model.{key}"] = value
    return out
