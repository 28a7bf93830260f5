"""The training-step benchmark: iterations/s of the full step (D update + G update with HFL) on one in-memory
random batch. Needs torch (the training extra)."""

from __future__ import annotations

from typing import Any

from hicmd.bench.rows import TrainRow
from hicmd.bench.subjects import NUM_CLASSES
from hicmd.bench.timing import TimingPolicy, latency_stats, time_runs

__all__ = ["bench_train"]


def _batch(cfg: Any) -> Any:
    import torch

    from hicmd.train.sampler import Batch

    t, m = cfg.train, cfg.model
    gen = torch.Generator().manual_seed(0)
    n_a = (t.neg_ids + 1) // 2

    def images(n: int) -> torch.Tensor:
        return torch.randn(n, 3, m.height, m.width, generator=gen)

    labels = torch.arange(t.pos_ids + t.neg_ids)
    return Batch(x_a=images(t.pos_ids), x_b=images(t.pos_ids), labels=labels[: t.pos_ids],
                 neg_a=images(n_a), neg_a_labels=labels[t.pos_ids:t.pos_ids + n_a],
                 neg_b=images(t.neg_ids - n_a), neg_b_labels=labels[t.pos_ids + n_a:])


def bench_train(cfg: Any, policy: TimingPolicy, threads: int) -> TrainRow:
    """Iterations/s of the full training step (D update + G update with HFL) on one in-memory random batch."""
    import torch

    from hicmd.model import HiCMD
    from hicmd.train.trainer import Trainer

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    trainer = Trainer(HiCMD(cfg.model, NUM_CLASSES), cfg, "cpu")
    batch = _batch(cfg)
    times, _ = time_runs(lambda: (trainer.dis_update(batch), trainer.gen_update(batch)), policy)
    stats = latency_stats(times, 1)
    images = batch.x_a.shape[0] * 2 + batch.neg_a.shape[0] + batch.neg_b.shape[0]
    return TrainRow(cfg.name, "cpu", threads, stats.runs, stats.p50_ms / 1000.0, stats.images_per_s, images,
                    stats.images_per_s * images)
