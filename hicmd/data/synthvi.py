"""SynthVI rendering: a person (synthvi_body) over a camera's scene, as a visible RGB or a thermal image.

Visible: garment colours and patterns, per-image illumination (brightness, colour cast, low-light noise) over
cluttered RGB scenes. Thermal: apparent temperature from body heat, clothing insulation and emissivity (never
from colour) over cooler thermal scenes, then an AGC-like gain/offset to 8 bits, optics blur and sensor noise.
Everything is drawn with OpenCV primitives and numpy lookups, a few milliseconds per 128x64 image.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from hicmd.data.synthvi_body import PART, Identity, Pose, draw_parts, sample_pose

__all__ = [
    "SCENES_PER_MODALITY",
    "scene_rgb",
    "scene_temperature",
    "shade_rgb",
    "person_temperature",
    "temperature_to_gray",
    "render",
]

SCENES_PER_MODALITY = 6


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cells: int = 6) -> np.ndarray:
    small = rng.standard_normal((cells, max(2, cells * width // max(height, 1)))).astype(np.float32)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)


@lru_cache(maxsize=64)
def scene_rgb(seed: int, index: int, height: int, width: int) -> np.ndarray:
    """A cluttered street/corridor-like RGB scene (float32 HxWx3, 0..255), fixed per (seed, index)."""
    rng = np.random.default_rng([seed, index, 101])
    horizon = int(height * rng.uniform(0.45, 0.75))
    wall, ground = rng.uniform(40, 220, 3), rng.uniform(30, 180, 3)
    img = np.empty((height, width, 3), np.float32)
    img[:horizon] = wall * np.linspace(1.1, 0.8, horizon)[:, None, None]
    img[horizon:] = ground * np.linspace(0.8, 1.1, height - horizon)[:, None, None]
    for _ in range(int(rng.integers(20, 40))):
        grey = rng.uniform(40, 200)  # muted colours: real streets are mostly greys and browns
        colour = tuple(float(c) for c in 0.5 * rng.uniform(0, 255, 3) + 0.5 * grey)
        x, y = int(rng.uniform(0, width)), int(rng.uniform(0, height))
        kind = rng.choice(["rect", "pole", "blob", "line"], p=[0.45, 0.2, 0.25, 0.1])
        if kind == "rect":
            w, h = int(rng.uniform(0.05, 0.35) * width), int(rng.uniform(0.05, 0.3) * height)
            cv2.rectangle(img, (x, y), (x + w, y + h), colour, -1)
        elif kind == "pole":
            cv2.rectangle(img, (x, 0), (x + int(rng.integers(2, max(3, width // 40))), horizon + 5), colour, -1)
        elif kind == "blob":
            axes = (int(rng.uniform(0.03, 0.15) * width), int(rng.uniform(0.03, 0.12) * height))
            green = (colour[0] * 0.4, 90 + colour[1] * 0.5, colour[2] * 0.3)
            cv2.ellipse(img, (x, y), axes, 0, 0, 360, green if rng.random() < 0.6 else colour, -1)
        else:
            cv2.line(img, (x, y), (int(rng.uniform(0, width)), int(rng.uniform(0, height))), colour,
                     int(rng.integers(1, 4)))
    img += 18 * _smooth_noise(rng, height, width, 8)[..., None]
    return np.clip(img, 0, 255)


@lru_cache(maxsize=64)
def scene_temperature(seed: int, index: int, height: int, width: int) -> np.ndarray:
    """The thermal counterpart: a scene in degrees Celsius (float32 HxW), cooler than people, a few warm things."""
    rng = np.random.default_rng([seed, index, 202])
    ambient = rng.uniform(8.0, 24.0)
    horizon = int(height * rng.uniform(0.45, 0.75))
    temp = np.full((height, width), ambient + rng.uniform(-2, 2), np.float32)
    temp[horizon:] = ambient + rng.uniform(-3, 4)
    for _ in range(int(rng.integers(12, 25))):
        x, y = int(rng.uniform(0, width)), int(rng.uniform(0, height))
        warm = rng.random() < 0.15  # lamps, engines, sunlit walls
        t = float(ambient + (rng.uniform(6, 15) if warm else rng.uniform(-4, 4)))
        if rng.random() < 0.6:
            w, h = int(rng.uniform(0.05, 0.35) * width), int(rng.uniform(0.05, 0.3) * height)
            cv2.rectangle(temp, (x, y), (x + w, y + h), t, -1)
        else:
            axes = (int(rng.uniform(0.03, 0.15) * width), int(rng.uniform(0.03, 0.12) * height))
            cv2.ellipse(temp, (x, y), axes, 0, 0, 360, t, -1)
    temp += 0.8 * _smooth_noise(rng, height, width, 8)
    return cv2.GaussianBlur(temp, (0, 0), 1.5)


def shade_rgb(ident: Identity, labels: np.ndarray, pattern: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Visible colours of a part map (float32 HxWx3); background pixels are left at 0."""
    palette = np.zeros((8, 3), np.float32)
    palette[PART["skin"]], palette[PART["hair"]] = ident.skin, ident.hair
    palette[PART["top"]], palette[PART["bottom"]] = ident.top.colour, ident.bottom.colour
    palette[PART["shoes"]], palette[PART["bag"]] = ident.shoes, ident.accessory_colour
    palette[PART["hat"]] = ident.hat_colour
    second = np.zeros_like(palette)
    second[PART["top"]], second[PART["bottom"]] = ident.top.colour2, ident.bottom.colour2
    img = np.where(pattern[..., None], second[labels], palette[labels])
    # soft light from one side and a touch of cloth texture
    h, w = labels.shape
    ramp = np.linspace(-1, 1, w, dtype=np.float32)[None, :, None] * rng.uniform(-0.15, 0.15)
    return img * (1 + ramp) + rng.normal(0, 4, (h, w, 1)).astype(np.float32)


def person_temperature(ident: Identity, labels: np.ndarray, pattern: np.ndarray, ambient: float,
                       skin: float) -> np.ndarray:
    """Apparent temperature (deg C, float32 HxW) of each person pixel: a clothed surface sits between skin and
    ambient by its insulation, and radiates by its emissivity (the rest is reflected ambient)."""
    def cloth(insulation: float, emissivity: float) -> float:
        surface = skin - insulation * (skin - ambient) * 0.85
        return emissivity * surface + (1 - emissivity) * ambient

    warm = skin - ambient
    lut = np.full(8, ambient, np.float32)
    lut[PART["skin"]] = skin
    lut[PART["hair"]] = ambient + 0.45 * warm
    lut[PART["top"]] = cloth(ident.top.insulation, ident.top.emissivity)
    lut[PART["bottom"]] = cloth(ident.bottom.insulation, ident.bottom.emissivity)
    lut[PART["shoes"]] = ambient + 0.2 * warm
    lut[PART["bag"]] = ambient + 0.08 * warm
    lut[PART["hat"]] = ambient + 0.3 * warm
    alt = lut.copy()
    alt[PART["top"]] = cloth(ident.top.insulation, ident.top.emissivity2)
    alt[PART["bottom"]] = cloth(ident.bottom.insulation, ident.bottom.emissivity2)
    return np.where(pattern, alt[labels], lut[labels])


def temperature_to_gray(temp: np.ndarray, rng: np.random.Generator, lo: float, hi: float,
                        blur: float = 0.8) -> np.ndarray:
    """White-hot 8-bit thermal image of the window lo..hi deg C: optics blur, sensor and column noise."""
    gray = (temp - lo) * (255.0 / (hi - lo))
    gray = cv2.GaussianBlur(gray, (0, 0), blur)
    h, w = gray.shape
    gray += rng.normal(0, rng.uniform(1.5, 5), (h, w)).astype(np.float32)
    gray += rng.normal(0, 2, (1, w)).astype(np.float32)  # fixed-pattern column noise of microbolometers
    return np.clip(gray, 0, 255).astype(np.uint8)


def _crop(scene: np.ndarray, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    sh, sw = scene.shape[:2]
    scale = rng.uniform(1.0, min(sh / height, sw / width))
    ch, cw = int(height * scale), int(width * scale)
    y, x = int(rng.integers(0, sh - ch + 1)), int(rng.integers(0, sw - cw + 1))
    return cv2.resize(scene[y:y + ch, x:x + cw], (width, height), interpolation=cv2.INTER_AREA)


def render(ident: Identity, modality: str, rng: np.random.Generator, height: int = 128, width: int = 64,
           seed: int = 0, pose: Pose | None = None) -> np.ndarray:
    """One detection-style crop of `ident`: uint8 HxWx3 RGB for "rgb", uint8 HxW gray for "ir".
    Pose, framing, scene, illumination and noise come from `rng`; the scenes of universe `seed`."""
    pose = pose or sample_pose(rng)
    body_px = height * rng.uniform(0.80, 0.94) * ident.stature
    feet = height * (1 - rng.uniform(0.01, 0.05))
    cx = width * (0.5 + rng.uniform(-0.08, 0.08))
    labels, pattern = draw_parts(ident, pose, height, width, cx, feet, body_px)
    alpha = cv2.GaussianBlur((labels > 0).astype(np.float32), (3, 3), 0.6)
    scene = int(rng.integers(SCENES_PER_MODALITY))
    if modality == "rgb":
        bg = _crop(scene_rgb(seed, scene, height * 2, width * 4), rng, height, width)
        img = bg * (1 - alpha[..., None]) + shade_rgb(ident, labels, pattern, rng) * alpha[..., None]
        gain = rng.uniform(0.35, 1.25)
        cast = rng.uniform(0.85, 1.15, 3).astype(np.float32)
        img = img * (gain * cast) + rng.normal(0, 2 + 8 * max(0.0, 0.8 - gain), img.shape).astype(np.float32)
        return np.clip(img, 0, 255).astype(np.uint8)
    if modality != "ir":
        raise ValueError(f"modality must be 'rgb' or 'ir', got {modality!r}")
    bg = _crop(scene_temperature(seed, scene, height * 2, width * 4), rng, height, width)
    ambient = float(np.median(bg)) + rng.uniform(-1, 1)
    skin = 33.0 + rng.uniform(-0.8, 1.2)
    temp = bg * (1 - alpha) + person_temperature(ident, labels, pattern, ambient, skin) * alpha
    # a random AGC window per image: the same person comes out brighter or darker from shot to shot
    lo, hi = ambient - rng.uniform(2, 8), skin + rng.uniform(0.5, 5)
    return temperature_to_gray(temp, rng, lo, hi, rng.uniform(0.5, 1.2))
