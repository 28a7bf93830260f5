"""ID-PIG, the image-generation half of the Hi-CMD objective (docs/reference/model.md §12): the translations of a
batch and the terms of the D and G steps. HFL, the identification half, is in hfl.py.

Naming follows the reference (MUNIT style): x_a RGB, x_b IR; p_* prototypes; s_* attribute codes;
s_a' = [style of b; pose, illumination of a]; x_ba = dec(p_b, s_a') is b's prototype rendered in a's modality.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from hicmd import losses
from hicmd.config import LossWeights
from hicmd.model import HiCMD
from hicmd.model.attribute import AttributeLayout

__all__ = ["RENDERS", "D_IMAGES", "G_IMAGES", "GRID_IMAGES", "swap_codes", "translate", "discriminator_terms",
           "generator_terms"]

# The (prototype, attribute code) each image is decoded from.
RENDERS = {
    "x_ba": ("p_b", "s_a'"), "x_ab": ("p_a", "s_b'"),  # cross-modality translations
    "x_a_rec": ("p_a", "s_a'"), "x_b_rec": ("p_b", "s_b'"),  # same-modality reconstructions
    "x_ba3": ("p_b", "s_a3"), "x_ab3": ("p_a", "s_b3"),  # modality-only (illumination) translations, eq. 7
}
D_IMAGES = ("x_ba", "x_ab", "x_ba3", "x_ab3")  # what the discriminators judge
G_IMAGES = ("x_ba", "x_ab", "x_a_rec", "x_b_rec", "x_ba3", "x_ab3")  # what the G step's losses need
GRID_IMAGES = ("x_ba", "x_ab", "x_a_rec", "x_b_rec")  # what a sample grid shows (with the cycles)


def swap_codes(layout: AttributeLayout, s_a: Tensor, s_b: Tensor) -> dict[str, Tensor]:
    """The paper's code swaps: s_a' keeps a's ID-excluded parts with b's style; s_a3 only takes a's
    illumination (modality-only translation, eq. 7)."""
    c = layout.compose
    return {"s_a'": c(s_b, s_a, s_a), "s_b'": c(s_a, s_b, s_b), "s_a3": c(s_b, s_b, s_a), "s_b3": c(s_a, s_a, s_b)}


def _decode(model: HiCMD, pairs: list[tuple[Tensor, Tensor]]) -> list[Tensor]:
    """Decode several (prototype, code) pairs in one batched call (the decoder normalises per sample)."""
    images = model.decode(torch.cat([p for p, _ in pairs]), torch.cat([s for _, s in pairs]))
    return list(images.split([p.shape[0] for p, _ in pairs]))


def translate(model: HiCMD, x_a: Tensor, x_b: Tensor, images: Sequence[str], cycle: bool = False) -> dict[str, Tensor]:
    """Encode x_a (RGB encoders) and x_b (IR encoders), swap their codes and decode `images` (keys of RENDERS) in
    one call. With `cycle`, x_ba and x_ab are encoded again and decoded back: x_aba, x_bab and the re-encoded
    codes s_a_rec, s_b_rec. Returns every code and image by its name above."""
    p_a, s_a = model.encode(x_a, "rgb")
    p_b, s_b = model.encode(x_b, "ir")
    t = {"p_a": p_a, "s_a": s_a, "p_b": p_b, "s_b": s_b, **swap_codes(model.layout, s_a, s_b)}
    t.update(zip(images, _decode(model, [(t[p], t[s]) for p, s in (RENDERS[name] for name in images)])))
    if cycle:
        p_b_rec, t["s_a_rec"] = model.encode(t["x_ba"], "rgb")
        p_a_rec, t["s_b_rec"] = model.encode(t["x_ab"], "ir")
        t["x_aba"], t["x_bab"] = _decode(model, [(p_a_rec, t["s_a'"]), (p_b_rec, t["s_b'"])])
    return t


def _discriminator_loss(discriminator: nn.Module, r1_weight: float, real: Tensor,
                        fakes: list[Tensor]) -> tuple[Tensor, Tensor]:
    """Sum over the fakes of [LSGAN(real vs fake) + r1 * R1(real)]; D runs once on real + all fakes (it has no
    batch statistics), so R1 is computed once and counted once per fake, as the reference's repeated calls do."""
    real = real.detach().requires_grad_(True)
    n = real.shape[0]
    outs = discriminator(torch.cat([real, *[f.detach() for f in fakes]]))
    real_out = [o[:n] for o in outs]
    loss = sum(losses.lsgan_d(real_out, [o[n * (k + 1):n * (k + 2)] for o in outs]) for k in range(len(fakes)))
    r1 = losses.r1_penalty(real_out, real)
    return loss + len(fakes) * r1_weight * r1, r1


def discriminator_terms(model: HiCMD, w: LossWeights, x_a: Tensor, x_b: Tensor,
                        t: dict[str, Tensor]) -> dict[str, Tensor]:
    """The D step: LSGAN + R1 on both discriminators against x_ba, x_ab and the illumination-only x_ba3, x_ab3
    (`t` from `translate(..., D_IMAGES)`). TOT_D is the weighted sum."""
    d_a, r1_a = _discriminator_loss(model.discriminator["rgb"], w.r1, x_a, [t["x_ba"], t["x_ba3"]])
    d_b, r1_b = _discriminator_loss(model.discriminator["ir"], w.r1, x_b, [t["x_ab"], t["x_ab3"]])
    return {"TOT_D": w.gan * (d_a + d_b), "D_a": d_a, "D_b": d_b, "D_r1": r1_a + r1_b}


def generator_terms(model: HiCMD, w: LossWeights, x_a: Tensor, x_b: Tensor,
                    t: dict[str, Tensor]) -> dict[str, Tensor]:
    """The G step's ID-PIG terms: reconstructions, cross-modality and cycle L1, code reconstruction, the KL pull
    and the adversarial term (`t` from `translate(..., G_IMAGES, cycle=True)`). TOT_G is the weighted sum."""
    part = model.layout.part
    s_a, s_b, s_a_rec, s_b_rec = t["s_a"], t["s_b"], t["s_a_rec"], t["s_b_rec"]
    g: dict[str, Tensor] = {
        "G_rec_x": losses.image_l1(t["x_a_rec"], x_a) + losses.image_l1(t["x_b_rec"], x_b),
        "G_cross_x": losses.image_l1(t["x_ba"], x_a) + losses.image_l1(t["x_ab"], x_b),
        "G_cyc_x": losses.image_l1(t["x_aba"], x_a) + losses.image_l1(t["x_bab"], x_b),
        "S_remain": losses.code_l1(part(s_a_rec, "ex"), part(s_a, "ex"))
        + losses.code_l1(part(s_b_rec, "ex"), part(s_b, "ex")),
        "S_ID": losses.code_l1(part(s_a_rec, "style"), part(s_b, "style"))
        + losses.code_l1(part(s_b_rec, "style"), part(s_a, "style")),
        "style_kl": losses.code_l2_pull(part(s_a, "ex"), part(s_b, "ex")),
    }
    d_rgb, d_ir = model.discriminator["rgb"], model.discriminator["ir"]
    g["G_adv"] = (losses.lsgan_g(d_rgb(torch.cat([t["x_ba"], t["x_ba3"]])))
                  + losses.lsgan_g(d_ir(torch.cat([t["x_ab"], t["x_ab3"]])))) * 2  # = sum of the 4 terms
    g["G_rec_s"] = g["S_remain"] + g["S_ID"]
    g["TOT_G"] = (w.recon_x * g["G_rec_x"] + w.cross_x * g["G_cross_x"] + w.cycle_x * g["G_cyc_x"]
                  + w.recon_code * g["G_rec_s"] + w.kl * g["style_kl"] + w.gan * g["G_adv"])
    return g
