"""The networks: reference parameter counts, export-friendly norms equal to the reference formulation,
ImageNet key compatibility, and a forward + backward through every part for both configs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torchvision.models import resnet18, resnet50

from hicmd import losses
from hicmd.presets import PRESETS
from hicmd.model import HiCMD, load_imagenet_weights
from hicmd.model.blocks import LayerNorm, adain
from hicmd.model.summary import count_parameters


@pytest.fixture(scope="module")
def paper() -> HiCMD:
    torch.manual_seed(0)
    return HiCMD(PRESETS["paper"].model, num_classes=206)


def test_paper_parameter_counts_equal_the_reference(paper: HiCMD) -> None:
    for modality in ("rgb", "ir"):
        assert count_parameters(paper.prototype[modality]) == 1_520_448
        assert count_parameters(paper.attribute[modality]) == 23_508_032  # ResNet-50 minus the unused fc
        assert count_parameters(paper.discriminator[modality]) == 1_025_571
    assert count_parameters(paper.decoder) == 12_123_011
    assert count_parameters(paper.hfl.h) == 8_317_952
    path = sum(count_parameters(m) for m in paper.inference_modules("rgb").values())
    assert path == 37_546_880
    assert paper.hfl.alpha.numel() == 1 and float(paper.hfl.alpha.detach()) == 0.5


def test_ir_branch_starts_as_a_copy_of_rgb(paper: HiCMD) -> None:
    rgb, ir = paper.prototype["rgb"].state_dict(), paper.prototype["ir"].state_dict()
    assert all(torch.equal(rgb[k], ir[k]) for k in rgb)
    assert paper.prototype["rgb"].stem[0][1].weight is not paper.prototype["ir"].stem[0][1].weight


def _adain_reference(x, w, b, eps=1e-5):
    """The MUNIT/Hi-CMD formulation: training-mode batch_norm over a [1, B*C, H, W] view."""
    n, c, h, wd = x.shape
    out = F.batch_norm(x.contiguous().view(1, n * c, h, wd), torch.zeros(n * c), torch.ones(n * c),
                       w.reshape(-1), b.reshape(-1), True, 0.1, eps)
    return out.view(n, c, h, wd)


def _layernorm_reference(x, gamma, beta, eps=1e-5):
    """The MUNIT/Hi-CMD formulation, including its batch-size-1 branch."""
    shape = [-1] + [1] * (x.dim() - 1)
    if x.size(0) == 1:
        mean, std = x.view(-1).mean().view(*shape), x.view(-1).std().view(*shape)
    else:
        mean, std = x.view(x.size(0), -1).mean(1).view(*shape), x.view(x.size(0), -1).std(1).view(*shape)
    return (x - mean) / (std + eps) * gamma.view(1, -1, 1, 1) + beta.view(1, -1, 1, 1)


@pytest.mark.parametrize("batch", [1, 2, 3])
def test_adain_equals_reference_formulation(batch: int) -> None:
    torch.manual_seed(batch)
    x, w, b = torch.randn(batch, 16, 8, 4) * 3 + 1, torch.randn(batch, 16), torch.randn(batch, 16)
    assert torch.allclose(adain(x, w, b), _adain_reference(x, w, b), atol=1e-5)


@pytest.mark.parametrize("batch", [1, 2, 3])
def test_layernorm_equals_reference_formulation(batch: int) -> None:
    torch.manual_seed(batch)
    norm = LayerNorm(16)
    x = torch.randn(batch, 16, 8, 4) * 2 - 0.5
    assert torch.allclose(norm(x), _layernorm_reference(x, norm.gamma, norm.beta), atol=1e-5)
    # Per-sample: a sample's output does not depend on the rest of the batch.
    assert torch.allclose(norm(x)[:1], norm(x[:1]), atol=1e-6)


def test_resnet_parts_load_torchvision_state_dicts_by_key(paper: HiCMD) -> None:
    state = resnet50().state_dict()  # random init: no download, same keys as the ImageNet weights
    assert load_imagenet_weights(paper.attribute["rgb"], state) == len(paper.attribute["rgb"].state_dict())
    assert torch.equal(paper.attribute["rgb"].layer3[0].conv2.weight, state["layer3.0.conv2.weight"])
    load_imagenet_weights(paper.hfl.h, state)
    assert torch.equal(paper.hfl.h.layer2[1].bn1.running_var, state["layer2.1.bn1.running_var"])
    with pytest.raises(ValueError, match="another"):
        load_imagenet_weights(paper.attribute["ir"], resnet18().state_dict())


def test_attribute_layout_matches_reference_indices(paper: HiCMD) -> None:
    a = torch.arange(2048.0).unsqueeze(0)
    style, pose, illumination = paper.layout.split(a)
    assert style[0, :3].tolist() == [0, 1, 2] and style[0, 256].item() == 512 and style.shape == (1, 1024)
    assert pose[0, 0].item() == 256 and pose[0, 128].item() == 768 and pose.shape == (1, 512)
    assert illumination[0, 0].item() == 384 and illumination[0, -1].item() == 2047
    assert torch.equal(paper.layout.merge(style, pose, illumination), a)
    b = -a
    swapped = paper.layout.compose(style=b, pose=a, illumination=a)  # s_a' = [style_b, ex_a]
    assert torch.equal(paper.layout.part(swapped, "style"), -style)
    assert torch.equal(paper.layout.part(swapped, "ex"), paper.layout.part(a, "ex"))


@pytest.mark.parametrize("name", ["tiny", "paper"])
def test_forward_backward_through_every_network_and_loss(name: str) -> None:
    torch.manual_seed(0)
    cfg, w = PRESETS[name].model, PRESETS[name].loss
    model = HiCMD(cfg, num_classes=4)
    x_a = torch.randn(2, 3, cfg.height, cfg.width)
    x_b = torch.randn(2, 3, cfg.height, cfg.width).requires_grad_()
    labels = torch.tensor([0, 1])
    p_a, s_a = model.encode(x_a, "rgb")
    p_b, s_b = model.encode(x_b, "ir")
    x_ab = model.decode(p_a, model.layout.compose(s_b, s_a, s_a))
    x_ba = model.decode(p_b, model.layout.compose(s_a, s_b, s_b))
    assert x_ab.shape == x_a.shape
    real, fake = model.discriminator["ir"](x_b), model.discriminator["ir"](x_ab)
    d_loss = losses.lsgan_d(real, fake) + w.r1 * losses.r1_penalty(real, x_b)
    out = model.identify(torch.cat([p_a, p_b]), torch.cat([s_a, s_b]))
    feats, all_labels = out.triplet, torch.cat([labels, labels])
    g_loss = (
        w.recon_x * losses.image_l1(x_ba, x_a)
        + w.recon_code * losses.code_l1(s_a, s_b)
        + w.kl * losses.code_l2_pull(model.layout.part(s_a, "ex"))
        + w.gan * losses.lsgan_g(model.discriminator["rgb"](x_ba))
        + losses.cross_entropy(out.logits, all_labels)
        + losses.hardest_triplet(feats, all_labels, feats, all_labels, w.margin)
    )
    (d_loss + g_loss).backward()
    for part in (model.prototype["rgb"], model.attribute["ir"], model.decoder, model.discriminator["ir"],
                 model.hfl.h, model.hfl.classifier):
        grads = [p.grad for p in part.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)
    model.eval()
    emb = model.embed(x_a, "rgb")
    assert emb.shape == (2, cfg.embedding_dim)
    assert torch.allclose(emb.norm(dim=1), torch.ones(2), atol=1e-5)
