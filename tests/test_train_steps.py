"""Trainer D/G steps, HFL row groups and the batch sampler on a small SynthVI set."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from hicmd.data import DataError, Record, load_train
from hicmd.model import HiCMD
from hicmd.train.hfl import alternate_rows
from hicmd.train.sampler import Batch, PairSampler
from hicmd.train.trainer import Trainer

from testkit.train import micro_config, write_synth

D_KEYS = {"TOT_D", "D_a", "D_b", "D_r1", "D_lr", "D_skipped"}
G_KEYS = {"TOTAL", "TOT_G", "G_rec_x", "G_cross_x", "G_cyc_x", "G_rec_s", "S_remain", "S_ID", "style_kl", "G_adv",
          "CE", "TRIP", "TOT_ID", "A_CE", "A_Trip", "G_lr", "ID_lr", "alpha", "G_skipped"}


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    return write_synth(tmp_path_factory.mktemp("synth"))


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def _changed(module: torch.nn.Module, before: dict[str, torch.Tensor]) -> bool:
    return any(not torch.equal(before[k], v) for k, v in module.named_parameters())


def test_d_then_g_step_update_their_own_parameters(synth):
    cfg = micro_config("train.channels_last=true")  # the tiny preset's memory format
    records, ids = load_train("regdb", synth)
    batch = PairSampler(records, cfg, seed=0).next().to("cpu", torch.channels_last)
    assert batch.x_a.shape == (2, 3, 80, 40) and batch.x_b.shape == (2, 3, 80, 40)  # 2 RGB + 2 IR
    torch.manual_seed(0)
    model = HiCMD(cfg.model, len(ids))
    trainer = Trainer(model, cfg)
    parts = {"gen": torch.nn.ModuleList([model.prototype, model.attribute, model.decoder]),
             "dis": model.discriminator, "hfl": model.hfl}

    before = {k: _snapshot(m) for k, m in parts.items()}
    d = trainer.dis_update(batch)
    assert set(d) == D_KEYS and all(math.isfinite(v) for v in d.values())
    assert d["D_skipped"] == 0 and d["D_lr"] == pytest.approx(cfg.train.lr_dis)
    assert _changed(parts["dis"], before["dis"])
    assert not _changed(parts["gen"], before["gen"]) and not _changed(parts["hfl"], before["hfl"])

    before = {k: _snapshot(m) for k, m in parts.items()}
    g = trainer.gen_update(batch)
    assert G_KEYS <= set(g) and all(math.isfinite(v) for v in g.values())
    assert g["G_skipped"] == 0 and g["ID_lr"] == pytest.approx(cfg.train.lr_id)
    assert g["CE"] == pytest.approx(math.log(len(ids)), rel=0.2)  # untrained classifier: about ln(classes)
    assert g["TOT_G"] > 0 and g["TRIP"] > 0
    assert _changed(parts["gen"], before["gen"]) and _changed(parts["hfl"], before["hfl"])
    assert not _changed(parts["dis"], before["dis"])
    assert all(p.requires_grad for p in model.discriminator.parameters())

    grids = trainer.translate(batch.x_a, batch.x_b)
    assert {"x_rgb", "x_ir", "rgb->ir", "ir->rgb", "rgb cycle", "ir cycle"} <= set(grids)
    assert all(v.shape == batch.x_a.shape for v in grids.values())
    assert model.training


def test_alternate_rows_builds_the_reference_groups():
    p, n = 2, 4  # reference batch: 20 rows, anchor sets of 8
    proto = lambda k: torch.arange(k, dtype=torch.float32).view(k, 1, 1, 1) + 100  # noqa: E731
    code = lambda k: torch.arange(k, dtype=torch.float32).view(k, 1)  # noqa: E731
    labels = torch.tensor([0, 1])
    rgb = (proto(2 * p + n // 2), code(2 * p + n // 2))
    ir = (proto(2 * p + n // 2) + 50, code(2 * p + n // 2) + 50)
    protos, codes, y, a1, a2 = alternate_rows(rgb, ir, p, labels, torch.tensor([7, 8]), torch.tensor([9, 10]))
    assert protos.shape[0] == codes.shape[0] == y.shape[0] == 20
    assert len(a1) == len(a2) == 8 and not set(a1.tolist()) & set(a2.tolist())
    assert y.tolist() == [0, 1] * 4 + [7, 8, 9, 10] + [0, 1] * 4
    # G7, first half: RGB prototypes of real a with the attributes of x_ba (rows 2..3 of the RGB codes)
    assert protos[12:14, 0, 0, 0].tolist() == [100, 101] and codes[12:14, 0].tolist() == [2, 3]


def test_sampler_is_deterministic_and_resumable(synth):
    cfg = micro_config()
    records, _ = load_train("regdb", synth)
    one, two = PairSampler(records, cfg, seed=5), PairSampler(records, cfg, seed=5)
    first = one.next()
    assert torch.equal(first.x_a, two.next().x_a)
    assert len({*first.labels.tolist(), *first.neg_a_labels.tolist(), *first.neg_b_labels.tolist()}) == 4
    state = one.state_dict()
    expected = one.next()
    two.load_state_dict(state)
    again = two.next()
    assert torch.equal(expected.x_b, again.x_b) and torch.equal(expected.labels, again.labels)


def test_sampler_names_identities_without_both_modalities(synth):
    cfg = micro_config()
    records, _ = load_train("regdb", synth)
    without_ir = [r for r in records if not (r.pid == 3 and r.modality == "ir")]
    with pytest.raises(DataError, match=r"3 \(no IR\)"):
        PairSampler(without_ir, cfg, seed=0)
    with pytest.raises(DataError, match="pos_ids"):
        PairSampler([r for r in records if r.pid < 3], cfg, seed=0)


def test_sampler_skips_and_counts_corrupt_images(synth, tmp_path):
    cfg = micro_config()
    records, _ = load_train("regdb", synth)
    broken, seen = [], set()
    for r in records:  # the first RGB image of each identity is broken; copies keep the shared set intact
        target = tmp_path / f"{r.pid}_{r.modality}_{r.path.name}"
        corrupt = r.modality == "rgb" and r.pid not in seen
        seen.add(r.pid) if corrupt else None
        target.write_bytes(b"not an image" if corrupt else r.path.read_bytes())
        broken.append(Record(target, r.pid, r.camera, r.modality))
    sampler = PairSampler(broken, cfg, seed=0)
    for _ in range(6):
        batch = sampler.next()
        assert torch.isfinite(batch.x_a).all() and batch.x_a.shape[0] == 2
    assert sampler.corrupt >= 1 and len(sampler.bad) == sampler.corrupt


def test_id_warmup_trains_hfl_and_encoders_only(synth):
    cfg = micro_config("train.warmup_id=1")
    records, ids = load_train("regdb", synth)
    batch = PairSampler(records, cfg, seed=0).next()
    torch.manual_seed(0)
    model = HiCMD(cfg.model, len(ids))
    trainer = Trainer(model, cfg)
    encoders = torch.nn.ModuleList([model.prototype, model.attribute])
    before = {"enc": _snapshot(encoders), "dec": _snapshot(model.decoder), "dis": _snapshot(model.discriminator),
              "hfl": _snapshot(model.hfl)}
    terms = trainer.id_update(batch)
    # Same columns as a full iteration (the CSV log keeps its header); the ID-PIG terms are not computed.
    assert set(terms) == D_KEYS | G_KEYS | {"Trip_pscore", "Trip_nscore"}
    assert math.isnan(terms["TOT_G"]) and math.isnan(terms["TOT_D"]) and math.isfinite(terms["CE"])
    assert _changed(encoders, before["enc"]) and _changed(model.hfl, before["hfl"])
    assert not _changed(model.decoder, before["dec"]) and not _changed(model.discriminator, before["dis"])
    assert trainer.opt["gen"].param_groups[0]["lr"] == pytest.approx(cfg.train.lr_gen)  # schedules still count


def test_shared_warmup_trains_rgb_encoders_on_both_modalities_then_copies_them(synth):
    cfg = micro_config("train.warmup_id=1", "train.warmup_shared=true")
    records, ids = load_train("regdb", synth)
    batch = PairSampler(records, cfg, seed=0).next()
    torch.manual_seed(0)
    model = HiCMD(cfg.model, len(ids))
    trainer = Trainer(model, cfg)
    rgb = torch.nn.ModuleList([model.prototype["rgb"], model.attribute["rgb"]])
    ir = torch.nn.ModuleList([model.prototype["ir"], model.attribute["ir"]])
    before = {"rgb": _snapshot(rgb), "ir": _snapshot(ir)}
    trainer.id_update(batch)
    assert _changed(rgb, before["rgb"]) and not _changed(ir, before["ir"])
    assert all(p.grad is None for p in ir.parameters())  # the IR images went through the RGB encoders
    trainer.copy_rgb_encoders_to_ir()
    for a, b in zip(rgb.state_dict().values(), ir.state_dict().values()):
        assert torch.equal(a, b)
    # the copy leaves them independent: a full iteration then moves them apart
    trainer.dis_update(batch), trainer.gen_update(batch)
    assert any(not torch.equal(a, b) for a, b in zip(rgb.state_dict().values(), ir.state_dict().values()))


def test_random_grayscale_touches_rgb_only(synth):
    records, _ = load_train("regdb", synth)
    gray = PairSampler(records, micro_config("train.gray_p=1", "train.flip=false"), seed=0).next()
    plain = PairSampler(records, micro_config("train.flip=false"), seed=0).next()
    def pixels(x: torch.Tensor) -> torch.Tensor:  # undo the per-channel ImageNet normalisation
        std, mean = torch.tensor([0.229, 0.224, 0.225]), torch.tensor([0.485, 0.456, 0.406])
        return x * std[:, None, None] + mean[:, None, None]

    for x in (gray.x_a, gray.neg_a):
        rgb = pixels(x)
        assert torch.allclose(rgb[:, 0], rgb[:, 1], atol=1e-5) and torch.allclose(rgb[:, 1], rgb[:, 2], atol=1e-5)
    plain_rgb = pixels(plain.x_a)
    assert not torch.allclose(plain_rgb[:, 0], plain_rgb[:, 1], atol=1e-2)  # SynthVI RGB is coloured
    assert gray.x_b.shape == plain.x_b.shape


def test_intensity_remap_keeps_edges_not_brightness(synth):
    records, _ = load_train("regdb", synth)
    cfg = micro_config("train.remap_p=1", "train.flip=false")
    remapped, again = PairSampler(records, cfg, seed=0).next(), PairSampler(records, cfg, seed=0).next()
    assert torch.equal(remapped.x_a, again.x_a) and torch.equal(remapped.x_b, again.x_b)  # seeded
    sampler = PairSampler(records, cfg, seed=0)
    edges = lambda im: np.abs(np.diff(im.astype(np.float32).mean(2), axis=1)).ravel()  # noqa: E731
    for modality in ("rgb", "ir"):
        first, other = [sampler._read(r) for r in records if r.modality == modality][:2]
        outs = [sampler._remap(first, modality) for _ in range(20)]
        for out in outs:
            assert out.shape == first.shape and out.dtype == np.uint8
            assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()  # one grey channel
        assert np.mean([np.abs(o.astype(int) - first.astype(int)).mean() for o in outs]) > 10  # brightness changes
        # the edges stay where they were: remapped images correlate with their source, not with another image
        same = np.mean([np.corrcoef(edges(o), edges(first))[0, 1] for o in outs])
        control = np.mean([np.corrcoef(edges(o), edges(other))[0, 1] for o in outs])
        assert same > 0.3 and same > control + 0.2, (same, control)


@pytest.mark.parametrize("mode, encoder_batches, h_batches", [
    ("per_group", [2, 2, 2], [2, 2, 2, 2, 2, 2, 4, 4]),  # the reference: every group on its own (P=2, Na=Nb=2)
    ("batched", [6], [20]),
])
def test_hfl_batchnorm_sees_the_reference_groups(mode, encoder_batches, h_batches):
    """The batch sizes the HFL step feeds the RGB attribute encoder's first BatchNorm and H's first BatchNorm: the
    reference runs a separate 2-image encoder forward per group and H per group G1..G8."""
    from hicmd.train.hfl import hfl_losses

    cfg = micro_config(f"train.hfl_batch={mode}", "train.pos_ids=2", "train.neg_ids=4")
    torch.manual_seed(0)
    model = HiCMD(cfg.model, 12).train()
    seen: dict[str, list[int]] = {"encoder": [], "h": []}
    first_bn = {name: next(m for m in module.modules() if isinstance(m, torch.nn.BatchNorm2d))
                for name, module in (("encoder", model.attribute["rgb"]), ("h", model.hfl.h))}
    for name, bn in first_bn.items():
        bn.register_forward_pre_hook(lambda _m, args, name=name: seen[name].append(args[0].shape[0]))
    m = cfg.model
    images = lambda n: torch.randn(n, 3, m.height, m.width)  # noqa: E731
    labels = torch.tensor([0, 1])
    batch = Batch(x_a=images(2), x_b=images(2), labels=labels, neg_a=images(2), neg_a_labels=torch.tensor([2, 3]),
                  neg_b=images(2), neg_b_labels=torch.tensor([4, 5]))
    out = hfl_losses(model, cfg, batch, images(2), images(2))
    assert seen == {"encoder": encoder_batches, "h": h_batches}
    assert torch.isfinite(out["CE"]) and torch.isfinite(out["TRIP"])
