"""`hicmd convert-original`: the authors' key names, a full paper-size round trip, and one-line errors.

The fake authors' files are written from a perturbed paper model with `to_original` (the table's inverse). What
keeps that from being circular are the literal key names below, read from bismex/HiCMD (networks.py: Conv2dBlock
.conv/.norm, LinearBlock .fc, ResidualEncoder model1/model2/model3, ASPP conv1/conv6/conv12/conv18/fuse,
ResidualDecoder model + mlp_w1..4/mlp_b1..4, Discriminator cnns; reIDmodel.py: ft_resnet/ft_resnet2 .model,
ClassBlock add_block/add_block2/classifier, ft_weight multp; trainer.py save: file and section names), with their
shapes, and the checks that each literal tensor lands in the literal hicmd parameter.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hicmd.commands.convert import command as convert_command
from hicmd.presets import PRESETS
from hicmd.authors_checkpoint import ConversionError, OriginalFiles, convert_original, find_original_files, to_original
from hicmd.errors import HicmdError
from hicmd.model import HiCMD
from hicmd.checkpoint import load_checkpoint, load_model

ROOT = Path(__file__).resolve().parents[1]
CLASSES = 206

# (file, section, their key) -> shape in the paper configuration (RegDB, 206 classes).
REFERENCE_SHAPES = {
    ("gen", "a", "enc_pro.model1.0.conv.weight"): (32, 3, 3, 3),
    ("gen", "a", "enc_pro.model2.1.conv.weight"): (128, 64, 3, 3),
    ("gen", "b", "enc_pro.model3.0.model.3.model.1.conv.bias"): (128,),
    ("gen", "a", "enc_pro.model3.1.conv1.conv.weight"): (64, 128, 1, 1),
    ("gen", "a", "enc_pro.model3.1.conv18.1.conv.weight"): (64, 64, 3, 3),
    ("gen", "a", "enc_pro.model3.1.fuse.conv.weight"): (256, 256, 1, 1),
    ("gen", "a", "enc_att.model.conv1.weight"): (64, 3, 7, 7),
    ("gen", "b", "enc_att.model.layer4.2.bn3.running_var"): (2048,),
    ("gen", "a", "enc_att.model.fc.weight"): (1000, 2048),  # present, unused
    ("gen", "a", "dec.model.0.model.3.model.1.conv.weight"): (256, 256, 3, 3),
    ("gen", "a", "dec.model.0.model.0.model.0.norm.running_mean"): (256,),  # AdaIN dummy buffer
    ("gen", "a", "dec.model.2.conv.weight"): (128, 256, 5, 5),
    ("gen", "a", "dec.model.2.norm.gamma"): (128,),
    ("gen", "b", "dec.model.4.norm.beta"): (64,),
    ("gen", "a", "dec.model.7.conv.weight"): (3, 64, 1, 1),
    ("gen", "a", "dec.mlp_w1.model.0.fc.weight"): (512, 512),
    ("gen", "a", "dec.mlp_b4.model.2.fc.bias"): (512,),
    ("dis", "a", "cnns.0.0.conv.weight"): (32, 3, 1, 1),
    ("dis", "a", "cnns.2.4.conv.weight"): (64, 32, 3, 3),
    ("dis", "b", "cnns.1.8.model.1.conv.weight"): (64, 64, 3, 3),
    ("dis", "a", "cnns.2.9.weight"): (1, 64, 1, 1),
    ("id", "id", "classifier.add_block.0.weight"): (2048, 2048),
    ("id", "id", "classifier.add_block.1.running_var"): (2048,),
    ("id", "id", "classifier.add_block2.0.weight"): (1024, 2048),
    ("id", "id", "classifier.classifier.0.weight"): (CLASSES, 2048),
    ("id", "backbone_pro", "model.layer2.0.conv1.weight"): (128, 256, 1, 1),
    ("id", "backbone_pro", "model.layer3.5.bn3.weight"): (1024,),
    ("id", "backbone_pro", "model.fc.weight"): (1000, 2048),  # present, unused
    ("id", "combine_weight", "multp"): (),
}

# (file, section, their key) -> the hicmd parameter it must land in.
REFERENCE_TO_OURS = {
    ("gen", "a", "enc_pro.model1.0.conv.weight"): "prototype.rgb.stem.0.1.weight",
    ("gen", "b", "enc_pro.model1.0.conv.weight"): "prototype.ir.stem.0.1.weight",
    ("gen", "b", "enc_pro.model3.1.conv12.1.conv.weight"): "prototype.ir.aspp.branches.2.1.1.weight",
    ("gen", "a", "enc_pro.model3.1.fuse.conv.bias"): "prototype.rgb.aspp.fuse.0.bias",
    ("gen", "a", "enc_att.model.layer3.4.conv2.weight"): "attribute.rgb.layer3.4.conv2.weight",
    ("gen", "b", "enc_att.model.bn1.running_mean"): "attribute.ir.bn1.running_mean",
    ("gen", "a", "dec.mlp_w3.model.2.fc.weight"): "decoder.mlp_w.2.4.weight",
    ("gen", "a", "dec.mlp_b1.model.0.fc.bias"): "decoder.mlp_b.0.0.bias",
    ("gen", "a", "dec.model.0.model.1.model.1.conv.weight"): "decoder.blocks.1.conv2.1.weight",
    ("gen", "a", "dec.model.4.norm.gamma"): "decoder.up.3.2.gamma",
    ("gen", "a", "dec.model.7.conv.weight"): "decoder.head.2.0.weight",
    ("dis", "b", "cnns.1.6.model.0.conv.weight"): "discriminator.ir.nets.1.6.block.0.1.weight",
    ("dis", "a", "cnns.0.0.conv.bias"): "discriminator.rgb.nets.0.0.0.bias",
    ("id", "backbone_pro", "model.layer3.2.bn2.running_var"): "hfl.h.layer3.2.bn2.running_var",
    ("id", "combine_weight", "multp"): "hfl.alpha",
    ("id", "id", "classifier.add_block.0.weight"): "hfl.bottleneck.weight",
    ("id", "id", "classifier.add_block.1.running_mean"): "hfl.bn.running_mean",
    ("id", "id", "classifier.add_block2.0.weight"): "hfl.triplet.weight",
    ("id", "id", "classifier.classifier.0.weight"): "hfl.classifier.weight",
}

# Parameter counts (buffers excluded) of the reference modules, docs/reference/model.md §1 (confirmed there by
# instantiating them).
REFERENCE_PARAMETERS = {("gen", "a", "enc_pro."): 1_520_448, ("gen", "a", "enc_att."): 25_557_032,
                        ("gen", "a", "dec."): 12_123_011, ("dis", "a", ""): 1_025_571,
                        ("id", "id", ""): 6_720_718, ("id", "backbone_pro", ""): 25_557_032}
BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def _perturb(model: torch.nn.Module) -> None:
    """Give every tensor its own values (the IR modules start as copies of the RGB ones; BN buffers as 0/1),
    so a tensor read from the wrong place cannot go unnoticed."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith("num_batches_tracked"):
                t.fill_(70000)
            elif name.endswith("running_var"):
                t.uniform_(0.5, 1.5, generator=gen)
            elif t.is_floating_point():
                t.mul_(1 + 0.1 * torch.randn(t.shape, generator=gen)).add_(0.01 * torch.randn(t.shape, generator=gen))
        model.hfl.alpha.fill_(0.61)


def _write(original: dict, folder: Path, iteration: int, parts=("gen", "id", "dis")) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for part in parts:
        paths[part] = folder / f"{part}_{iteration:07d}.pt"
        torch.save(original[part], paths[part])
    return paths


@pytest.fixture(scope="module")
def paper(tmp_path_factory):
    """A perturbed paper model, written in the authors' format (plus opts.yaml); tensors kept: only the
    literal ones the tests look at."""
    model = HiCMD(PRESETS["paper"].model, CLASSES).eval()
    _perturb(model)
    original = to_original(model)
    run = tmp_path_factory.mktemp("regdb_run")
    paths = _write(original, run / "checkpoints", 70000)
    # Their opts.yaml is a yaml dump of the option namespace; a python tag must not stop us.
    (run / "opts.yaml").write_text("nclasses: 206\nh: 256\nw: 128\nG_dim: 32\ngpu_ids: !!python/tuple [0]\n")
    shapes = {(f, s, k): tuple(v.shape) for f, secs in original.items() for s, d in secs.items() for k, v in d.items()}
    counts = {key: sum(v.numel() for k, v in original[key[0]][key[1]].items()
                       if k.startswith(key[2]) and not k.endswith(BUFFERS)) for key in REFERENCE_PARAMETERS}
    literal = {key: original[key[0]][key[1]][key[2]].clone() for key in REFERENCE_TO_OURS}
    del original
    return {"model": model, "run": run, "paths": paths, "shapes": shapes, "counts": counts, "literal": literal}


@pytest.fixture(scope="module")
def tiny():
    model = HiCMD(PRESETS["tiny"].model, 10)
    _perturb(model)
    return model


def test_fake_files_use_the_reference_key_names_and_shapes(paper):
    for key, shape in REFERENCE_SHAPES.items():
        assert paper["shapes"].get(key) == shape, key
    assert paper["counts"] == REFERENCE_PARAMETERS


def test_paper_round_trip_lands_every_tensor(paper, tmp_path, capsys):
    out = tmp_path / "converted.pt"
    convert_command(out=out, gen=None, id_=None, dis=None, opts=None, directory=paper["run"] / "checkpoints",
                    iteration=None)  # --dir mode: picks gen/id/dis_0070000.pt and ../opts.yaml
    printed = capsys.readouterr().out
    assert "dis_0070000.pt" in printed and "opts.yaml" in printed and "note:" not in printed
    state = load_checkpoint(out)
    assert state["iteration"] == 70000 and state["num_classes"] == CLASSES
    assert "bismex/HiCMD" in state["source"] and state["config"]["name"] == "paper"
    del state
    loaded, cfg = load_model(out)
    assert not loaded.training and cfg.model == PRESETS["paper"].model
    converted, source = loaded.state_dict(), paper["model"].state_dict()
    for key, ours in REFERENCE_TO_OURS.items():
        assert torch.equal(converted[ours], paper["literal"][key]), (key, ours)
    for key, value in converted.items():
        assert torch.equal(value, source[key]), key
    # The networks are fully convolutional up to global pooling: a small input checks the weights just as well.
    x = torch.randn(1, 3, 128, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        for modality in ("rgb", "ir"):
            assert torch.allclose(loaded.embed(x, modality), paper["model"].embed(x, modality), atol=1e-6)


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    return subprocess.run([sys.executable, "-m", "hicmd", "convert-original", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def _one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    return lines[0]


def test_cli_rejects_another_architecture(tiny, tmp_path):
    paths = _write(to_original(tiny), tmp_path, 500, ("gen", "id"))
    line = _one_line_error(_cli("--gen", str(paths["gen"]), "--id", str(paths["id"]), "--out", str(tmp_path / "o.pt")))
    assert "gen_0000500.pt" in line and "enc_pro.model1.0.conv.weight" in line and "(8, 3, 3, 3)" in line
    assert not (tmp_path / "o.pt").exists()


def test_cli_rejects_a_non_checkpoint(tiny, tmp_path):
    junk = tmp_path / "gen_0000500.pt"
    junk.write_bytes(os.urandom(4096))
    ident = _write(to_original(tiny), tmp_path, 500, ("id",))["id"]
    line = _one_line_error(_cli("--gen", str(junk), "--id", str(ident), "--out", str(tmp_path / "o.pt")))
    assert str(junk) in line and "not a PyTorch checkpoint" in line
    with pytest.raises(ConversionError, match="not the authors' gen_XXXXXXX.pt"):
        convert_original(OriginalFiles(ident, ident))
    with pytest.raises(HicmdError, match="either"):
        convert_command(out=tmp_path / "o.pt", gen=junk, id_=None, dis=None, opts=None, directory=tmp_path,
                        iteration=None)


# --------------------------------------------------------------------------- in-process error paths (tiny sizes)


def _tiny_files(tiny, tmp_path, edit=None) -> OriginalFiles:
    original = to_original(tiny)
    if edit:
        edit(original)
    paths = _write(original, tmp_path, 500)
    return OriginalFiles(paths["gen"], paths["id"], paths["dis"])


def test_tiny_round_trip_and_missing_dis(tiny, tmp_path):
    files = _tiny_files(tiny, tmp_path)
    conversion = convert_original(files, PRESETS["tiny"])
    source = tiny.state_dict()
    assert conversion.notes == []
    assert all(torch.equal(v, source[k]) for k, v in conversion.model.state_dict().items())

    conversion = convert_original(OriginalFiles(files.gen, files.id), PRESETS["tiny"])
    assert len(conversion.notes) == 1 and "no dis_*.pt" in conversion.notes[0]
    for key, value in conversion.model.state_dict().items():  # discriminators keep their init, nothing else
        assert torch.equal(value, source[key]) != key.startswith("discriminator."), key


@pytest.mark.parametrize("edit, message", [
    (lambda o: o["gen"]["a"].pop("dec.mlp_w2.model.1.fc.weight"), "lacks dec.mlp_w2.model.1.fc.weight"),
    (lambda o: o["gen"]["b"].__setitem__("enc_pro.model3.0.model.4.model.0.conv.weight", torch.zeros(1)),
     "['b'] has enc_pro.model3.0.model.4.model.0.conv.weight"),
    (lambda o: o["id"]["id"].pop("classifier.classifier.0.weight"), "no classifier.classifier.0.weight"),
    (lambda o: o["dis"].pop("b"), "dis_0000500.pt is not the authors' dis_XXXXXXX.pt"),
])
def test_broken_files_name_the_key(tiny, tmp_path, edit, message):
    with pytest.raises(ConversionError) as info:
        convert_original(_tiny_files(tiny, tmp_path, edit), PRESETS["tiny"])
    assert message in str(info.value) and "\n" not in str(info.value)


def test_opts_and_decoder_copies_are_cross_checked(tiny, tmp_path):
    files = _tiny_files(tiny, tmp_path, lambda o: o["gen"]["b"]["dec.model.7.conv.bias"].add_(1))
    conversion = convert_original(files, PRESETS["tiny"])
    assert len(conversion.notes) == 1 and "decoder copies" in conversion.notes[0]
    assert torch.equal(conversion.model.decoder.head[2][0].bias, tiny.decoder.head[2][0].bias)  # 'a' is used

    opts = tmp_path / "opts.yaml"
    opts.write_text("nclasses: 11\n")
    with pytest.raises(ConversionError, match="nclasses 11 but the classifier"):
        convert_original(OriginalFiles(files.gen, files.id, None, opts), PRESETS["tiny"])
    opts.write_text("nclasses: 10\nh: 288\n")
    with pytest.raises(ConversionError, match="h is 288"):
        convert_original(OriginalFiles(files.gen, files.id, None, opts), PRESETS["tiny"])


def test_find_original_files(tmp_path):
    ckpt = tmp_path / "run" / "checkpoints"
    ckpt.mkdir(parents=True)
    for name in ("gen_0005000.pt", "id_0005000.pt", "dis_0005000.pt", "gen_0010000.pt", "optimizer.pt"):
        (ckpt / name).write_bytes(b"")
    (tmp_path / "run" / "opts.yaml").write_text("nclasses: 206\n")
    files = find_original_files(ckpt)  # gen_0010000 has no id_ partner
    assert files == OriginalFiles(ckpt / "gen_0005000.pt", ckpt / "id_0005000.pt", ckpt / "dis_0005000.pt",
                                  tmp_path / "run" / "opts.yaml")
    with pytest.raises(ConversionError, match="iterations there: 5000"):
        find_original_files(ckpt, 10000)
    with pytest.raises(ConversionError, match="no gen_XXXXXXX.pt"):
        find_original_files(tmp_path)
