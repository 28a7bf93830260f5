"""HFL, the identification half of the Hi-CMD objective, inside the G step (docs/reference/model.md §13; ID-PIG,
the other half, is in idpig.py): random erasing, re-encoding, the alternate sampling groups G1-G8, cross-entropy
over all rows and the two hardest-triplet terms.

With P positive pairs and Na + Nb negatives the groups hold P, P, P, P, Na, Nb, 2P, 2P rows
(reference P=2, Na=Nb=2: 2+2+2+2+2+2+4+4 = 20 rows).
"""

from __future__ import annotations

import torch
from torch import Tensor

from hicmd import losses
from hicmd.config import Config
from hicmd.model import HiCMD
from hicmd.train.sampler import Batch

__all__ = ["erase_box", "random_erase", "alternate_rows", "hfl_losses"]


def erase_box(height: int, width: int, sl: float = 0.02, sh: float = 0.4, r1: float = 0.3,
              tries: int = 100) -> tuple[int, int, int, int] | None:
    """The reference eraser's rectangle (top, left, h, w), or None when none of its `tries` fits.

    As the authors' RandomErasing: the area fraction uniform in [sl, sh], the aspect ratio h/w uniform in
    [r1, 1/r1] (not log-uniform as torchvision's), up to 100 tries for a rectangle inside the image. Rejecting
    rectangles wider than the image makes erased patches tall more often than the ratio alone would (0.805 at
    256x128). Draws from torch's global RNG, whose state the checkpoint keeps."""
    for _ in range(tries):
        area, aspect = torch.rand(2).tolist()
        target = (sl + (sh - sl) * area) * height * width
        ratio = r1 + (1 / r1 - r1) * aspect
        h, w = int(round((target * ratio) ** 0.5)), int(round((target / ratio) ** 0.5))
        if w < width and h < height:
            top = int(torch.randint(0, height - h + 1, ()).item())
            left = int(torch.randint(0, width - w + 1, ()).item())
            return top, left, h, w
    return None


def random_erase(x: Tensor, p: float) -> Tensor:
    """Reference random erasing (p, then erase_box; value 0 in normalised space), per image, on a copy."""
    if p <= 0 or x.shape[0] == 0:
        return x
    out = x.clone()
    for img in out:
        if torch.rand(()).item() < p and (box := erase_box(img.shape[1], img.shape[2])) is not None:
            top, left, h, w = box
            img[:, top:top + h, left:left + w] = 0
    return out


def alternate_rows(
    rgb: tuple[Tensor, Tensor], ir: tuple[Tensor, Tensor], n_pos: int, labels: Tensor,
    neg_a_labels: Tensor, neg_b_labels: Tensor,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Build the G1-G8 rows from the codes of [real a; x_ba; neg a] (RGB encoders) and [real b; x_ab; neg b]
    (IR encoders). Returns (prototypes, attributes, row labels, anchor rows {G1,G3,G7}, anchor rows {G2,G4,G8})."""
    (p_rgb, s_rgb), (p_ir, s_ir) = rgb, ir
    pa, pba, pna = p_rgb[:n_pos], p_rgb[n_pos:2 * n_pos], p_rgb[2 * n_pos:]
    sa, sba, sna = s_rgb[:n_pos], s_rgb[n_pos:2 * n_pos], s_rgb[2 * n_pos:]
    pb, pab, pnb = p_ir[:n_pos], p_ir[n_pos:2 * n_pos], p_ir[2 * n_pos:]
    sb, sab, snb = s_ir[:n_pos], s_ir[n_pos:2 * n_pos], s_ir[2 * n_pos:]
    groups = [  # (prototype, attribute, labels); a[k], b[k], x_ab[k], x_ba[k] all carry labels[k]
        (pa, sa, labels), (pb, sb, labels), (pba, sba, labels), (pab, sab, labels),  # G1-G4
        (pna, sna, neg_a_labels), (pnb, snb, neg_b_labels),  # G5, G6
        (torch.cat([pa, pba]), torch.cat([sba, sa]), labels.repeat(2)),  # G7: prototype/attribute swapped
        (torch.cat([pb, pab]), torch.cat([sab, sb]), labels.repeat(2)),  # G8
    ]
    sizes = [g[2].shape[0] for g in groups]
    starts = [sum(sizes[:i]) for i in range(len(sizes))]

    def rows(*gs: int) -> Tensor:
        return torch.cat([torch.arange(starts[g], starts[g] + sizes[g]) for g in gs]).to(labels.device)

    prototypes = torch.cat([g[0] for g in groups])
    attributes = torch.cat([g[1] for g in groups])
    row_labels = torch.cat([g[2] for g in groups])
    return prototypes, attributes, row_labels, rows(0, 2, 6), rows(1, 3, 7)


def _group_sizes(n_pos: int, n_neg_a: int, n_neg_b: int) -> list[int]:
    return [n_pos, n_pos, n_pos, n_pos, n_neg_a, n_neg_b, 2 * n_pos, 2 * n_pos]


def _encode(model: HiCMD, parts: list[Tensor], modality: str, per_group: bool):  # noqa: ANN202 - Codes
    """Codes of [real; generated; negatives] of one modality: one encoder forward per part (the reference, whose
    BatchNorms see each 2-image group alone) or one forward over all of them."""
    if not per_group:
        return model.encode(torch.cat(parts), modality)
    codes = [model.encode(x, modality) for x in parts if x.shape[0]]
    return type(codes[0])(*(torch.cat(field) for field in zip(*codes)))


def hfl_losses(model: HiCMD, cfg: Config, batch: Batch, x_ba: Tensor, x_ab: Tensor,
               ir_encoders: str = "ir") -> dict[str, Tensor]:
    """CE and triplet terms of HFL (unweighted; the triplet term sums both anchor sets) plus monitoring values,
    over the batch's real and negative images and the generated x_ba (RGB rows) and x_ab (IR rows).
    Generated images must come detached: ID gradients reach the encoders, H, alpha and the classifier, not the
    decoder. `ir_encoders="rgb"` encodes the IR rows with the RGB encoders too (the shared warm-up)."""
    w, p = cfg.loss, cfg.train.erasing_p
    per_group = cfg.train.hfl_batch == "per_group"
    rgb_parts = [random_erase(x, p) for x in (batch.x_a, x_ba, batch.neg_a)]
    ir_parts = [random_erase(x, p) for x in (batch.x_b, x_ab, batch.neg_b)]
    rgb, ir = _encode(model, rgb_parts, "rgb", per_group), _encode(model, ir_parts, ir_encoders, per_group)
    n_pos = batch.x_a.shape[0]
    prototypes, attributes, y, anchors1, anchors2 = alternate_rows(
        rgb, ir, n_pos, batch.labels, batch.neg_a_labels, batch.neg_b_labels)
    if per_group:  # H once per group G1..G8, as the reference: BatchNorm sees each group's rows alone
        sizes = _group_sizes(n_pos, batch.neg_a.shape[0], batch.neg_b.shape[0])
        outs = [model.identify(pr, at) for pr, at in zip(prototypes.split(sizes), attributes.split(sizes))
                if pr.shape[0]]
        out = type(outs[0])(*(torch.cat(field) for field in zip(*outs)))
    else:  # one encoder forward per modality and H once over all rows: faster, other BatchNorm statistics
        out = model.identify(prototypes, attributes)
    ce = losses.cross_entropy(out.logits, y)
    f = out.triplet
    trip = sum(losses.hardest_triplet(f[a], y[a], f, y, w.margin, w.triplet_reg) for a in (anchors1, anchors2))
    with torch.no_grad():
        s_pos, s_neg = losses.mine_hardest(f @ f.t(), y, y)
        acc_trip = (s_pos > s_neg + w.margin).float().mean()
        acc_ce = (out.logits.argmax(1) == y).float().mean()
    return {"CE": ce, "TRIP": trip, "A_CE": acc_ce, "A_Trip": acc_trip,
            "Trip_pscore": s_pos.mean(), "Trip_nscore": s_neg.mean()}
