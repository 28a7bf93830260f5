"""SynthVI identities and their drawing as a part-label map (no colour, no modality).

An identity is what stays fixed across images and modalities: body proportions, garments (colour for the
visible camera, emissivity for the thermal one, sampled independently so colour never predicts IR), garment
pattern geometry, sleeve/leg length (exposed warm skin), accessories. A `Pose` is what changes per image.
`draw_parts` rasterises both into a label map plus a pattern mask; synthvi.py turns those into RGB or IR.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["PART", "PATTERNS", "Garment", "Identity", "Pose", "sample_identity", "sample_pose", "draw_parts"]

# Part labels of the map drawn by `draw_parts`.
PART = {"bg": 0, "skin": 1, "hair": 2, "top": 3, "bottom": 4, "shoes": 5, "bag": 6, "hat": 7}
PATTERNS = ("plain", "stripes", "checks", "two-tone", "logo")
VIEWS = ("front", "back", "side")


@dataclass(frozen=True)
class Garment:
    colour: tuple[int, int, int]  # RGB of the main cloth
    colour2: tuple[int, int, int]  # RGB of the pattern
    pattern: str  # one of PATTERNS
    period: float  # stripe/check period as a fraction of body height
    emissivity: float  # thermal: independent of colour
    emissivity2: float  # thermal emissivity of the pattern (prints and seams show in IR)
    insulation: float  # 0 thin (surface near skin temperature) .. 1 thick (near ambient)
    length: str  # top: tank | short | long ; bottom: shorts | skirt | long


@dataclass(frozen=True)
class Identity:
    pid: int
    sex: str  # "male" | "female" (file names, hair and skirt odds)
    build: float  # shoulder width / height
    hips: float  # hip width / shoulder width
    head: float  # head height / height
    legs: float  # leg length / height
    stature: float  # relative height in the frame
    skin: tuple[int, int, int]
    hair: tuple[int, int, int]
    long_hair: bool
    top: Garment
    bottom: Garment
    shoes: tuple[int, int, int]
    accessory: str  # none | bag | backpack
    accessory_side: str  # left | right (person's own side)
    accessory_colour: tuple[int, int, int]
    hat: bool
    hat_colour: tuple[int, int, int]


@dataclass(frozen=True)
class Pose:
    view: str  # front | back | side
    facing_left: bool  # side view direction
    phase: float  # walking cycle, radians
    stride: float  # swing amplitude


def _colour(rng: np.random.Generator, sat: tuple[float, float] = (0.0, 0.9),
            val: tuple[float, float] = (0.12, 0.95)) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(rng.random(), rng.uniform(*sat), rng.uniform(*val))
    return int(r * 255), int(g * 255), int(b * 255)


def _garment(rng: np.random.Generator, lengths: tuple[str, ...], weights: tuple[float, ...]) -> Garment:
    emissivity = float(rng.uniform(0.55, 0.98))
    # the pattern differs clearly in emissivity from the cloth, in a random direction
    e2 = float(np.clip(emissivity + rng.choice([-1, 1]) * rng.uniform(0.25, 0.4), 0.3, 1.0))
    if abs(e2 - emissivity) < 0.2:
        e2 = float(np.clip(emissivity - np.sign(e2 - emissivity + 1e-6) * 0.3, 0.3, 1.0))
    return Garment(
        colour=_colour(rng), colour2=_colour(rng), pattern=str(rng.choice(PATTERNS)),
        period=float(rng.uniform(0.04, 0.08)), emissivity=emissivity, emissivity2=e2,
        insulation=float(rng.uniform(0.2, 0.8)), length=str(rng.choice(lengths, p=weights)),
    )


def sample_identity(pid: int, seed: int) -> Identity:
    """Deterministic identity `pid` of the SynthVI universe `seed`."""
    rng = np.random.default_rng([seed, pid, 7])
    female = bool(rng.random() < 0.5)
    skirt = 0.3 if female else 0.0
    tone = rng.uniform(0.25, 0.95)
    skin = tuple(int(c) for c in np.array([224, 172, 140]) * tone + np.array([30, 20, 15]) * (1 - tone))
    return Identity(
        pid=pid, sex="female" if female else "male",
        build=float(rng.uniform(0.19, 0.33)), hips=float(rng.uniform(0.65, 1.0)),
        head=float(rng.uniform(0.11, 0.16)), legs=float(rng.uniform(0.41, 0.55)),
        stature=float(rng.uniform(0.86, 1.0)), skin=skin,
        hair=_colour(rng, (0.2, 0.8), (0.05, 0.6)), long_hair=bool(rng.random() < (0.6 if female else 0.15)),
        top=_garment(rng, ("tank", "short", "long"), (0.2, 0.4, 0.4)),
        bottom=_garment(rng, ("shorts", "skirt", "long"), (0.3 - skirt / 2, skirt, 0.7 - skirt / 2)),
        shoes=_colour(rng, (0.0, 0.5), (0.05, 0.5)),
        accessory=str(rng.choice(["none", "bag", "backpack"], p=[0.4, 0.3, 0.3])),
        accessory_side=str(rng.choice(["left", "right"])), accessory_colour=_colour(rng),
        hat=bool(rng.random() < 0.25), hat_colour=_colour(rng),
    )


def sample_pose(rng: np.random.Generator) -> Pose:
    return Pose(view=str(rng.choice(VIEWS, p=[0.4, 0.4, 0.2])), facing_left=bool(rng.random() < 0.5),
                phase=float(rng.uniform(0, 2 * np.pi)), stride=float(rng.uniform(0.15, 0.4)))


def _limb(labels: np.ndarray, a: np.ndarray, b: np.ndarray, width: float, label: int, upto: float = 1.0) -> None:
    """Thick segment a->b; `upto` < 1 draws only the first fraction (sleeves, trouser legs)."""
    end = a + (b - a) * upto
    cv2.line(labels, tuple(np.round(a).astype(int)), tuple(np.round(end).astype(int)), label,
             max(1, int(round(width))), cv2.LINE_8)


def draw_parts(ident: Identity, pose: Pose, height: int, width: int, cx: float, feet: float,
               body_px: float) -> tuple[np.ndarray, np.ndarray]:
    """Part-label map (uint8, PART values) and pattern mask (bool) of one person whose feet are at (cx, feet)
    and who is `body_px` pixels tall."""
    labels = np.zeros((height, width), np.uint8)
    h = body_px
    side = pose.view == "side"
    mirrored = side and pose.facing_left
    if mirrored:  # drawn facing right at the mirrored place, then the whole map is flipped back to (cx, feet)
        cx = width - 1 - cx
    top_y = feet - h
    head_h = ident.head * h
    neck = top_y + head_h
    shoulder_y = neck + 0.02 * h
    hip_y = feet - ident.legs * h
    sw = ident.build * h / 2 * (0.5 if side else 1.0)
    hw = sw * ident.hips
    limb_w = 0.06 * h * (0.7 + ident.build * 1.5)
    swing = pose.stride * np.sin(pose.phase)
    # mirror: the person's left is the image right in a front view, image left in a back view
    acc_dir = (1 if ident.accessory_side == "left" else -1) * (-1 if pose.view == "back" else 1)

    def p(x: float, y: float) -> np.ndarray:
        return np.array([x, y], np.float64)

    # legs and feet (skin first, then the bottom garment over its length)
    leg_len = feet - hip_y
    cover = {"shorts": 0.38, "skirt": 0.0, "long": 0.97}[ident.bottom.length]
    for k, sgn in enumerate((-1, 1)):
        hip = p(cx + sgn * hw * (0.15 if side else 0.5), hip_y)
        if side:
            foot = hip + p(sgn * swing * leg_len, leg_len * np.cos(swing))
        else:
            foot = hip + p(sgn * 0.04 * h, leg_len * (1 - 0.06 * max(0.0, sgn * swing)))
        _limb(labels, hip, foot, limb_w * 1.15, PART["skin"])
        if cover:
            _limb(labels, hip, foot, limb_w * 1.3, PART["bottom"], cover)
        cv2.ellipse(labels, tuple(np.round(foot).astype(int)),
                    (max(1, int(limb_w * (1.0 if side else 0.7))), max(1, int(limb_w * 0.45))), 0, 0, 360,
                    PART["shoes"], -1)
    if ident.bottom.length == "skirt":
        knee = hip_y + 0.55 * leg_len
        pts = np.array([[cx - hw, hip_y], [cx + hw, hip_y], [cx + hw * 1.35, knee], [cx - hw * 1.35, knee]])
        cv2.fillPoly(labels, [np.round(pts).astype(np.int32)], PART["bottom"])
    else:  # pelvis
        pts = np.array([[cx - hw, hip_y - 0.03 * h], [cx + hw, hip_y - 0.03 * h], [cx + hw, hip_y + 0.06 * h],
                        [cx - hw, hip_y + 0.06 * h]])
        cv2.fillPoly(labels, [np.round(pts).astype(np.int32)], PART["bottom"])

    # arms: skin, then the sleeve
    arm_len = 0.37 * h
    sleeve = {"tank": 0.0, "short": 0.42, "long": 0.92}[ident.top.length]
    arms = []
    for sgn in (-1, 1):
        shoulder = p(cx + sgn * sw * (0.2 if side else 0.92), shoulder_y + limb_w * 0.4)
        if side:
            hand = shoulder + p(-sgn * swing * arm_len, arm_len * np.cos(swing))
        else:
            hand = shoulder + p(sgn * 0.06 * h, arm_len * (1 - 0.05 * abs(swing)))
        arms.append((shoulder, hand))
    # torso (the top), drawn over the far arm in a side view
    if side:
        _limb(labels, *arms[0], limb_w, PART["skin"])
        if sleeve:
            _limb(labels, *arms[0], limb_w * 1.15, PART["top"], sleeve)
    torso = np.array([[cx - sw, shoulder_y], [cx + sw, shoulder_y], [cx + hw * 1.05, hip_y + 0.03 * h],
                      [cx - hw * 1.05, hip_y + 0.03 * h]])
    cv2.fillPoly(labels, [np.round(torso).astype(np.int32)], PART["top"])
    cv2.ellipse(labels, (int(cx), int(shoulder_y + limb_w * 0.3)), (max(1, int(sw)), max(1, int(limb_w * 0.6))),
                0, 180, 360, PART["top"], -1)
    for k, (shoulder, hand) in enumerate(arms):
        if side and k == 0:
            continue
        _limb(labels, shoulder, hand, limb_w, PART["skin"])
        if sleeve:
            _limb(labels, shoulder, hand, limb_w * 1.15, PART["top"], sleeve)

    # accessories
    acc = ident.accessory
    if acc == "backpack":
        bw, bh = sw * (1.6 if not side else 1.4), (hip_y - shoulder_y) * 0.7
        if pose.view == "back":
            x0 = cx - bw / 2
            cv2.rectangle(labels, (int(x0), int(shoulder_y + 0.02 * h)), (int(x0 + bw), int(shoulder_y + bh)),
                          PART["bag"], -1)
        elif pose.view == "front":
            for sgn in (-1, 1):
                _limb(labels, p(cx + sgn * sw * 0.6, shoulder_y), p(cx + sgn * sw * 0.55, shoulder_y + bh * 0.8),
                      max(1.0, limb_w * 0.35), PART["bag"])
        else:  # behind the back, which is to the left when facing right
            x1 = cx - sw * 0.9
            cv2.rectangle(labels, (int(x1 - 0.12 * h), int(shoulder_y + 0.02 * h)), (int(x1), int(shoulder_y + bh)),
                          PART["bag"], -1)
    elif acc == "bag":
        bx = cx + acc_dir * (sw + limb_w * 0.6) * (0.3 if side else 1.0)
        by = hip_y - 0.02 * h
        size = 0.1 * h
        _limb(labels, p(cx - acc_dir * sw * 0.7, shoulder_y), p(bx, by), max(1.0, limb_w * 0.25), PART["bag"])
        cv2.rectangle(labels, (int(bx - size * 0.6), int(by)), (int(bx + size * 0.6), int(by + size)), PART["bag"], -1)

    # head, hair, hat
    hc = (int(cx + (0.02 * h if side else 0)), int(top_y + head_h / 2))
    axes = (max(1, int(head_h * (0.40 if side else 0.36))), max(1, int(head_h / 2)))
    if ident.long_hair:
        hair_w = axes[0] * 1.1
        cv2.rectangle(labels, (int(hc[0] - hair_w - (axes[0] * 0.4 if side else 0)), hc[1]),
                      (int(hc[0] + (0 if side else hair_w)), int(shoulder_y + 0.08 * h)), PART["hair"], -1)
    cv2.ellipse(labels, hc, axes, 0, 0, 360, PART["hair"] if pose.view == "back" else PART["skin"], -1)
    if pose.view != "back":
        if side:  # hair on the back half of the head
            cv2.ellipse(labels, (hc[0] - axes[0] // 3, hc[1]), axes, 0, 90, 300, PART["hair"], -1)
        else:
            cv2.ellipse(labels, hc, axes, 0, 180, 360, PART["hair"], -1)
    if ident.hat:
        brim = 1.25 if not side else 1.5
        cv2.rectangle(labels, (int(hc[0] - axes[0] * brim), int(top_y - head_h * 0.12)),
                      (int(hc[0] + axes[0] * brim), int(top_y + head_h * 0.3)), PART["hat"], -1)

    if mirrored:
        labels = np.ascontiguousarray(labels[:, ::-1])
        cx = width - 1 - cx
    pattern = _pattern(ident, pose, labels, cx, shoulder_y, hip_y, feet, sw, h)
    return labels, pattern


def _pattern(ident: Identity, pose: Pose, labels: np.ndarray, cx: float, shoulder_y: float, hip_y: float,
             feet: float, sw: float, h: float) -> np.ndarray:
    """Where each garment shows its second colour/emissivity, in body coordinates (stable across poses)."""
    height, width = labels.shape
    ys = np.arange(height, dtype=np.float32)[:, None]
    xs = np.arange(width, dtype=np.float32)[None, :]
    mask = np.zeros(labels.shape, bool)
    for part, g, y0, y1 in ((PART["top"], ident.top, shoulder_y, hip_y), (PART["bottom"], ident.bottom, hip_y, feet)):
        period = max(2.0, g.period * h)
        if g.pattern == "plain":
            continue
        if g.pattern == "stripes":
            m = ((ys - y0) // period) % 2 == 1
        elif g.pattern == "checks":
            m = (((ys - y0) // period) + ((xs - cx) // period)) % 2 == 1
        elif g.pattern == "two-tone":
            m = ys > (y0 + y1) / 2
        else:  # logo: a block on the chest or thigh, printed front and back
            if pose.view == "side":
                continue
            r = 0.06 * h
            ym = y0 + 0.35 * (y1 - y0)
            m = (np.abs(ys - ym) < r) & (np.abs(xs - cx) < r * (1.0 if part == PART["top"] else 0.7))
        mask |= np.broadcast_to(m, labels.shape) & (labels == part)
    return mask
