"""The `paper` config (ResNet-50 encoders, 256x128, reference batch 2 pairs + 4 negatives) runs real iterations on
the CPU. The loop's checkpoints would be ~1 GB here, so this drives the Trainer and sampler the loop uses."""

from __future__ import annotations

import math

import pytest
import torch

from hicmd.presets import PRESETS
from hicmd.data import load_train
from hicmd.model import HiCMD
from hicmd.train.sampler import PairSampler
from hicmd.train.trainer import Trainer

from testkit.train import write_synth


@pytest.mark.slow
def test_paper_config_runs_two_iterations_on_cpu(tmp_path):
    cfg = PRESETS["paper"]
    root = write_synth(tmp_path / "synth", ids=12, size=(128, 64))  # 6 training identities: 2 pairs + 4 negatives
    records, ids = load_train("regdb", root)
    sampler = PairSampler(records, cfg, seed=cfg.train.seed)
    torch.manual_seed(cfg.train.seed)
    trainer = Trainer(HiCMD(cfg.model, len(ids)), cfg)
    alpha0 = trainer.model.hfl.alpha.item()
    for _ in range(2):
        batch = sampler.next()
        assert batch.x_a.shape == (2, 3, 256, 128) and batch.neg_a.shape[0] + batch.neg_b.shape[0] == 4
        terms = {**trainer.dis_update(batch), **trainer.gen_update(batch)}
        assert all(math.isfinite(v) for v in terms.values())
        assert terms["D_skipped"] == terms["G_skipped"] == 0
    assert terms["CE"] == pytest.approx(math.log(len(ids)), rel=0.3)
    assert trainer.model.hfl.alpha.item() != alpha0  # the SGD alpha group stepped
    assert trainer.sched["gen"].last_epoch == 2
