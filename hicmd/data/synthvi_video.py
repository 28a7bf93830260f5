"""SynthVI clips: test identities walking over a ground plane watched by an RGB and an IR camera of a rig.

The cameras are pinhole cameras over one shared ground plane (hicmd/data/synthvi_camera.py): people are drawn at
their projected foot point with perspective scale, far to near so the nearer person occludes. `bispectrum` is a
dual-sensor camera (views nearly coincide); `separate` is two cameras mounted apart with partial overlap, and
its clips add one person who walks where only one of the two cameras sees them (a deployment's everyday case:
such a person must never be matched to anyone).

Per clip DIR/<clip>/: rgb.mp4, ir.mp4 (mp4v), gt_rgb.txt, gt_ir.txt (MOTChallenge frame,id,x,y,w,h,conf,-1,-1,-1,
1-based frames, id = SynthVI pid in both cameras), det_rgb.txt, det_ir.txt (gt with box jitter, a few misses and
a few false positives with id -1), clip.json (the rig, both cameras, the true RGB->IR ground-plane homography
and which person, if any, only one camera sees), and with y16 ir_y16/<frame:06d>.png in centi-Kelvin.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from hicmd.data.synthvi import person_temperature, scene_rgb, scene_temperature, shade_rgb, temperature_to_gray
from hicmd.data.synthvi_body import Identity, Pose, draw_parts, sample_identity
from hicmd.data.synthvi_camera import RIGS, PinholeCamera, make_rig, rig_homography
from hicmd.modality import MODALITIES
from hicmd.runtime.atomic import staged_folder

__all__ = ["Walker", "clip_folders", "write_clip", "write_videos"]


@dataclass(frozen=True)
class Walker:
    """One person's path in normalised area coordinates: x across (0..1 inside the area), z depth (0 far .. 1 near).
    `ground` turns them into metres on the ground plane."""

    ident: Identity
    t0: float  # seconds when the walk starts
    x0: float
    z0: float
    vx: float  # street widths per second
    vz: float
    stride: float
    reach: tuple[float, float, float, float] = (-0.25, 1.25, 0.0, 1.0)  # x and z limits of the walk

    def at(self, t: float) -> tuple[float, float, Pose] | None:
        dt = t - self.t0
        if dt < 0:
            return None
        x, z = self.x0 + self.vx * dt, self.z0 + self.vz * dt
        if not self.reach[0] < x < self.reach[1] or not self.reach[2] <= z <= self.reach[3]:
            return None
        view = "side" if abs(self.vx) > abs(self.vz) else ("front" if self.vz > 0 else "back")
        return x, z, Pose(view, self.vx < 0, 2 * np.pi * 1.8 * dt, self.stride)


def _walkers(pids: list[int], seed: int, rng: np.random.Generator, duration: float) -> list[Walker]:
    walkers = []
    for k, pid in enumerate(pids):
        across = rng.random() < 0.75
        z0 = float(rng.uniform(0.1, 0.9))
        if across:  # enter from one side, leave at the other
            direction = 1 if rng.random() < 0.5 else -1
            x0, vx, vz = (-0.2 if direction > 0 else 1.2), direction * rng.uniform(0.12, 0.22), rng.uniform(-0.02, 0.02)
        else:  # come closer or walk away
            x0, vx = rng.uniform(0.2, 0.8), rng.uniform(-0.03, 0.03)
            vz = (1 if z0 < 0.5 else -1) * rng.uniform(0.06, 0.1)
        t0 = float(rng.uniform(0, duration * 0.45)) if k else 0.0
        walkers.append(Walker(sample_identity(pid, seed), t0, float(x0), z0, float(vx), float(vz),
                              float(rng.uniform(0.2, 0.35))))
    return walkers


# the walking area on the ground, metres: x 0..1 -> X 0..10 m, z 0 (far) .. 1 (near) -> Y 9 .. 3 m
AREA_X, AREA_Y = (0.0, 10.0), (9.0, 3.0)
PERSON_M = 1.75  # body height in metres at stature 1


def ground(x: float, z: float) -> tuple[float, float]:
    return AREA_X[0] + x * (AREA_X[1] - AREA_X[0]), AREA_Y[0] + z * (AREA_Y[1] - AREA_Y[0])


ONE_CAMERA_MIN_S = 2.5  # the one-camera person is in full view of their camera at least this long


def _drawable(cam: PinholeCamera, foot: np.ndarray, head: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """Per person (foot and head pixels (N, 2), nearest depth (N,)): may `_layers` draw them at all (in front of the
    camera, tall enough, not wholly outside the frame)."""
    body = foot[:, 1] - head[:, 1]
    return ((depth >= 0.5) & (body >= 8) & (-body < foot[:, 0]) & (foot[:, 0] < cam.width + body) & (foot[:, 1] > 0)
            & (foot[:, 1] < cam.height + body))


def _could_draw(cam: PinholeCamera, feet: np.ndarray, stature: float) -> tuple[np.ndarray, np.ndarray]:
    """Per ground point: (may `_layers` draw a person standing there, is the person wholly in the frame)."""
    foot, depth_foot = cam.project(feet)
    head, depth_head = cam.project(feet + [0.0, 0.0, stature])
    body = foot[:, 1] - head[:, 1]
    depth = np.minimum(depth_foot, depth_head)
    whole = ((depth >= 0.5) & (body >= 16) & (0.3 * body < foot[:, 0]) & (foot[:, 0] < cam.width - 0.3 * body)
             & (head[:, 1] > 0) & (foot[:, 1] < cam.height))
    return _drawable(cam, foot, head, depth), whole


def _one_camera_walker(pid: int, camera: str, seed: int, rng: np.random.Generator, duration: float,
                       cams: dict[str, PinholeCamera], fps: int) -> Walker:
    """A person who walks where only `camera` sees them: wholly in its view for at least ONE_CAMERA_MIN_S, never
    drawable in the other camera's. Paths are drawn at random until one qualifies."""
    ident = sample_identity(pid, seed)
    stature = PERSON_M * ident.stature
    other = MODALITIES[1 - MODALITIES.index(camera)]
    for _ in range(3000):
        start = rng.uniform([-3.0, -1.0], [15.0, 15.0])  # metres, around the shared walking area
        heading, speed = rng.uniform(0, 2 * np.pi), rng.uniform(1.0, 1.8)
        velocity = speed * np.array([np.sin(heading), np.cos(heading)])
        t0 = float(rng.uniform(0, duration * 0.45))
        t = np.arange(t0, duration, 1.0 / fps) - t0
        feet = np.c_[start + t[:, None] * velocity, np.zeros(len(t))]
        if _could_draw(cams[other], feet, stature)[0].any():
            continue
        if _could_draw(cams[camera], feet, stature)[1].sum() < ONE_CAMERA_MIN_S * fps:
            continue
        width, depth = AREA_X[1] - AREA_X[0], AREA_Y[1] - AREA_Y[0]  # normalised area coordinates, as `ground`
        x0, z0 = (start[0] - AREA_X[0]) / width, (start[1] - AREA_Y[0]) / depth
        far = (t[-1] + 1.0) * speed  # metres: the walk never leaves its reach while the clip lasts
        reach = (x0 - far / abs(width), x0 + far / abs(width), z0 - far / abs(depth), z0 + far / abs(depth))
        return Walker(ident, t0, float(x0), float(z0), float(velocity[0] / width), float(velocity[1] / depth),
                      float(rng.uniform(0.2, 0.35)), tuple(float(v) for v in reach))
    raise ValueError(f"no path seen by the {camera} camera alone on this rig; its view is covered by the other's")


def _view(walker: Walker, cam: PinholeCamera) -> tuple[str, bool]:
    """Which side of a walker a camera sees, from the walking direction relative to the optical axis."""
    vx, vy = walker.vx * (AREA_X[1] - AREA_X[0]), walker.vz * (AREA_Y[1] - AREA_Y[0])
    heading = np.arctan2(vx, vy) - np.radians(cam.yaw_deg)
    across, along = np.sin(heading), np.cos(heading)
    if abs(across) > 0.7:
        return "side", bool(across < 0)
    return ("back" if along > 0 else "front"), False


def _layers(walkers: list[Walker], t: float, cam: PinholeCamera):
    """Per visible person, far to near: (walker, labels, pattern, box) with the box clipped to the frame."""
    placed = []
    for walker in walkers:
        state = walker.at(t)
        if state is None:
            continue
        x, z, pose = state
        gx, gy = ground(x, z)
        stature = PERSON_M * walker.ident.stature
        (foot, head), depth = cam.project(np.array([[gx, gy, 0.0], [gx, gy, stature]]))
        if not _drawable(cam, foot[None], head[None], depth.min(keepdims=True))[0]:
            continue
        view, left = _view(walker, cam)
        placed.append((float(depth[0]), walker, foot, float(foot[1] - head[1]), replace(pose, view=view,
                                                                                         facing_left=left)))
    out = []
    for _, walker, foot, body, pose in sorted(placed, key=lambda p: -p[0]):  # far first: near people occlude
        labels, pattern = draw_parts(walker.ident, pose, cam.height, cam.width, float(foot[0]), float(foot[1]), body)
        ys, xs = np.nonzero(labels)
        if len(xs) < 30:
            continue
        box = (int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1))
        out.append((walker, labels, pattern, box))
    return out


def _detections(gt: list[tuple], rng: np.random.Generator, width: int, height: int, frames: int) -> list[tuple]:
    det = []
    for frame, _pid, x, y, w, h in gt:
        if rng.random() < 0.05:  # a miss
            continue
        j = rng.normal(0, 0.05, 4)
        x0, y0 = max(0.0, x + j[0] * w), max(0.0, y + j[1] * h)
        x1, y1 = min(float(width), x + w + (j[0] + j[2]) * w), min(float(height), y + h + (j[1] + j[3]) * h)
        if x1 - x0 >= 2 and y1 - y0 >= 2:
            det.append((frame, -1, x0, y0, x1 - x0, y1 - y0, rng.uniform(0.5, 1.0)))
    for frame in range(1, frames + 1):
        if rng.random() < 0.04:  # a false positive
            w, h = rng.uniform(0.08, 0.2) * width, rng.uniform(0.25, 0.5) * height
            det.append((frame, -1, rng.uniform(0, width - w), rng.uniform(0, height - h), w, h, rng.uniform(0.3, 0.6)))
    return sorted(det, key=lambda d: d[0])


def _write_mot(path: Path, rows: list[tuple], with_conf: bool) -> None:
    lines = []
    for row in rows:
        frame, pid, x, y, w, h = row[:6]
        conf = row[6] if with_conf else 1
        lines.append(f"{frame},{pid},{x:.1f},{y:.1f},{w:.1f},{h:.1f},{conf:.3f},-1,-1,-1")
    path.write_text("\n".join(lines) + ("\n" if lines else ""))


def write_clip(folder: str | Path, pids: list[int], seed: int, index: int, frames: int = 120,
               size: tuple[int, int] = (192, 256), rgb_fps: int = 10, ir_fps: int = 10, y16: bool = False,
               rig: str = "bispectrum", one_camera_pid: int | None = None) -> dict:
    """Render one clip of `pids` walking past both cameras of `rig`, plus, with `one_camera_pid`, that person
    walking where only one of the cameras sees them; returns the clip.json content. The folder appears complete or
    not at all: a render that fails or is killed leaves no half clip (with half a video) to be streamed later."""
    folder = Path(folder)
    with staged_folder(folder) as stage:
        return _render_clip(stage, folder.name, pids, seed, index, frames, size, rgb_fps, ir_fps, y16, rig,
                            one_camera_pid)


def _render_clip(folder: Path, name: str, pids: list[int], seed: int, index: int, frames: int, size: tuple[int, int],
                 rgb_fps: int, ir_fps: int, y16: bool, rig: str, one_camera_pid: int | None) -> dict:
    rng = np.random.default_rng([seed, index, 404])
    duration = frames / rgb_fps
    walkers = _walkers(pids, seed, rng, duration)
    cams = make_rig(rig, np.random.default_rng([seed, index, 909]), size)
    one_camera = None
    if one_camera_pid is not None:  # its own random stream: the clip's other people stay as they were
        camera = MODALITIES[index % 2]  # seen by the RGB camera alone in even clips, by the IR camera in odd ones
        walkers.append(_one_camera_walker(one_camera_pid, camera, seed, np.random.default_rng([seed, index, 818]),
                                          duration, cams, rgb_fps))
        one_camera = {"pid": one_camera_pid, "camera": camera}
    counts = {"rgb": frames, "ir": frames * ir_fps // rgb_fps}
    fps = {"rgb": rgb_fps, "ir": ir_fps}
    height, width = cams["rgb"].height, cams["rgb"].width
    bg_rgb = scene_rgb(seed, 1000 + 2 * index, height, width)
    bg_ir = scene_temperature(seed, 1001 + 2 * index, cams["ir"].height, cams["ir"].width)
    gain = rng.uniform(0.6, 1.1)
    ambient = float(np.median(bg_ir))
    lo, hi = ambient - rng.uniform(2, 5), 34.0 + rng.uniform(1, 4)  # a fixed AGC window per clip
    skins = {w.ident.pid: 33.0 + rng.uniform(-0.5, 1.0) for w in walkers[:len(pids)]}
    if one_camera is not None:
        skins[one_camera_pid] = 33.0 + np.random.default_rng([seed, index, 819]).uniform(-0.5, 1.0)
    if y16:
        (folder / "ir_y16").mkdir(exist_ok=True)
    for modality in MODALITIES:
        frame_rng = np.random.default_rng([seed, index, 505 if modality == "rgb" else 606])
        cam = cams[modality]
        writer = cv2.VideoWriter(str(folder / f"{modality}.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), fps[modality],
                                 (cam.width, cam.height))
        if not writer.isOpened():
            raise RuntimeError(f"OpenCV cannot write mp4v video {folder / f'{modality}.mp4'}")
        gt = []
        for frame in range(1, counts[modality] + 1):
            t = (frame - 1) / fps[modality]
            layers = _layers(walkers, t, cam)
            if modality == "rgb":
                img = bg_rgb.copy()
                for walker, labels, pattern, _ in layers:
                    alpha = cv2.GaussianBlur((labels > 0).astype(np.float32), (3, 3), 0.6)[..., None]
                    img = img * (1 - alpha) + shade_rgb(walker.ident, labels, pattern, frame_rng) * alpha
                img = img * gain + frame_rng.normal(0, 3, img.shape).astype(np.float32)
                out = cv2.cvtColor(np.clip(img, 0, 255).astype(np.uint8), cv2.COLOR_RGB2BGR)
            else:
                temp = bg_ir.copy()
                for walker, labels, pattern, _ in layers:
                    alpha = cv2.GaussianBlur((labels > 0).astype(np.float32), (3, 3), 0.6)
                    body = person_temperature(walker.ident, labels, pattern, ambient, skins[walker.ident.pid])
                    temp = temp * (1 - alpha) + body * alpha
                if y16:
                    kelvin = (temp + 273.15) * 100 + frame_rng.normal(0, 3, temp.shape)
                    cv2.imwrite(str(folder / "ir_y16" / f"{frame:06d}.png"),
                                np.clip(kelvin, 0, 65535).astype(np.uint16))
                out = cv2.cvtColor(temperature_to_gray(temp, frame_rng, lo, hi, 0.9), cv2.COLOR_GRAY2BGR)
            writer.write(out)
            gt += [(frame, walker.ident.pid, *box) for walker, _, _, box in layers]
        writer.release()
        _write_mot(folder / f"gt_{modality}.txt", gt, with_conf=False)
        det = _detections(gt, np.random.default_rng([seed, index, 707, len(modality)]), cam.width, cam.height,
                          counts[modality])
        _write_mot(folder / f"det_{modality}.txt", det, with_conf=True)
    meta = {"clip": name, "seed": seed, "height": height, "width": width, "fps": fps, "frames": counts,
            "identities": sorted({w.ident.pid for w in walkers}), "one_camera_only": one_camera,
            "y16": y16, "y16_unit": "centi-Kelvin" if y16 else None,
            "mot_format": "frame,id,x,y,w,h,conf,-1,-1,-1 (1-based frames; gt id = SynthVI pid; det id -1)",
            "rig": rig, "cameras": {m: c.to_json() for m, c in cams.items()},
            "sizes": {m: [c.width, c.height] for m, c in cams.items()},
            "homography_rgb_to_ir": rig_homography(cams["rgb"], cams["ir"]).tolist()}
    (folder / "clip.json").write_text(json.dumps(meta, indent=1))
    return meta


def write_videos(out: str | Path, pids: list[int], seed: int, clips: int = 2, frames: int = 120,
                 size: tuple[int, int] = (192, 256), y16: bool = False,
                 progress: Callable[[int], None] | None = None, rig: str = "bispectrum") -> list[Path]:
    """`clips` clips of 3-4 of `pids` each (test identities); odd clips run the IR camera at half frame rate. On the
    `separate` rig one more of `pids` walks where only one camera sees them."""
    if rig not in RIGS:
        raise ValueError(f"unknown rig {rig!r}; use one of {', '.join(RIGS)}")
    if len(pids) < 3:
        raise ValueError(f"videos need at least 3 identities, got {len(pids)}")
    out = Path(out)
    written = []
    for index in range(clips):
        rng = np.random.default_rng([seed, index, 808])
        chosen = [int(p) for p in rng.choice(pids, size=min(len(pids), int(rng.integers(3, 5))), replace=False)]
        rest = [int(p) for p in pids if p not in chosen]
        one_camera = int(np.random.default_rng([seed, index, 817]).choice(rest)) if rig == "separate" and rest else None
        folder = out / f"clip{index + 1:02d}"
        write_clip(folder, chosen, seed, index, frames, size, 10, 5 if index % 2 else 10, y16, rig, one_camera)
        written.append(folder)
        if progress:
            progress(1)
    return written


def clip_folders(paths: list[str] | list[Path], marker: str = "clip.json") -> list[Path]:
    """The clip folders (those holding a `marker` file: clip.json, as `write_clip` leaves them) among `paths` or
    under them."""
    found: list[Path] = []
    for path in map(Path, paths):
        found += [path] if (path / marker).is_file() else sorted(p.parent for p in path.rglob(marker))
    return found
