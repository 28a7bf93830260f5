"""Synthetic two-camera clips, a fake embedder and a colour detector for the stream tests (no model needed).

A clip has coloured "people" (rectangles) walking in lanes; the IR camera is co-located at half the resolution and
half the frame rate and sees each person as a distinct grey level. The files follow the `hicmd synth --videos`
layout: rgb.mp4, ir.mp4, gt_rgb.txt, gt_ir.txt, det_rgb.txt, det_ir.txt (MOTChallenge, 1-based frames).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

# identity -> (BGR colour in RGB camera, grey level in IR camera)
PALETTE = {1: ((40, 40, 220), 250), 2: ((40, 200, 40), 200), 3: ((220, 60, 40), 150), 4: ((30, 210, 230), 110),
           5: ((200, 40, 200), 75)}
RGB_BG, IR_BG = (90, 90, 90), 25


@dataclass
class Walker:
    pid: int
    lane: int
    x0: float
    speed: float  # px/s in the RGB camera
    t_in: float
    t_out: float


def walkers() -> list[Walker]:
    return [Walker(1, 0, 20, 18, 0.0, 12.0), Walker(2, 1, 260, -15, 0.0, 12.0), Walker(3, 2, 60, 12, 1.0, 12.0),
            Walker(4, 3, 200, -10, 0.0, 7.0), Walker(5, 3, 40, 14, 6.0, 12.0)]


def boxes_at(t: float, scale: float, people: list[Walker]) -> list[tuple[int, tuple[float, float, float, float]]]:
    out = []
    for w in people:
        if not w.t_in <= t < w.t_out:
            continue
        x = w.x0 + w.speed * (t - w.t_in)
        out.append((w.pid, (x * scale, (8 + 58 * w.lane) * scale, 22 * scale, 50 * scale)))
    return out


def _mot(rows: list[str], path: Path) -> None:
    path.write_text("".join(rows))


def make_clip(folder: Path, seconds: float = 12.0, fps_rgb: float = 10.0, fps_ir: float = 5.0,
              seed: int = 0, people: list[Walker] | None = None) -> Path:
    """Write a clip; returns the folder. Detections = gt + 1 px jitter, a few misses and weak false alarms."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    people = people or walkers()
    for cam, fps, size, scale in (("rgb", fps_rgb, (320, 240), 1.0), ("ir", fps_ir, (160, 120), 0.5)):
        writer = cv2.VideoWriter(str(folder / f"{cam}.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
        gt, det = [], []
        for f in range(int(seconds * fps)):
            image = np.full((size[1], size[0], 3), RGB_BG if cam == "rgb" else IR_BG, np.uint8)
            for pid, (x, y, w, h) in boxes_at(f / fps, scale, people):
                colour = PALETTE[pid][0] if cam == "rgb" else (PALETTE[pid][1],) * 3
                cv2.rectangle(image, (int(x), int(y)), (int(x + w), int(y + h)), colour, -1)
                gt.append(f"{f + 1},{pid},{x:.1f},{y:.1f},{w:.1f},{h:.1f},1,-1,-1,-1\n")
                if rng.random() < 0.05:
                    continue  # a missed detection
                jx, jy = rng.normal(0, 0.5, 2)
                det.append(f"{f + 1},-1,{x + jx:.1f},{y + jy:.1f},{w:.1f},{h:.1f},{rng.uniform(0.7, 1):.2f},-1,-1,-1\n")
            if rng.random() < 0.1:  # a weak false alarm somewhere
                det.append(f"{f + 1},-1,{rng.uniform(0, size[0] - 20):.1f},{rng.uniform(0, size[1] - 40):.1f},"
                           f"{20 * scale:.1f},{40 * scale:.1f},0.2,-1,-1,-1\n")
            writer.write(image)
        writer.release()
        _mot(gt, folder / f"gt_{cam}.txt")
        _mot(det, folder / f"det_{cam}.txt")
    return folder


class FakeEmbedder:
    """Reads a crop's central colour, looks up whose it is and returns that identity's unit vector plus noise.

    It goes through the real crops, so a wrong crop (wrong box, wrong frame) gives a wrong identity. `swap_ir`
    permutes the IR identities: a negative control whose matches must all be wrong.
    """

    def __init__(self, dim: int = 32, noise: float = 0.15, seed: int = 0, swap_ir: bool = False) -> None:
        self.dim, self.noise = dim, noise
        self.rng = np.random.default_rng(seed)
        self.basis = np.linalg.qr(self.rng.normal(size=(dim, dim)))[0][:, : len(PALETTE) + 1].T  # orthonormal rows
        self.swap_ir = swap_ir
        self.calls: list[tuple[str, int]] = []

    def identity(self, crop: np.ndarray, modality: str) -> int:
        h, w = crop.shape[:2]
        centre = crop[h // 4: max(h // 4 + 1, 3 * h // 4), w // 4: max(w // 4 + 1, 3 * w // 4)]
        mean = centre.reshape(-1, 1 if centre.ndim == 2 else centre.shape[2]).mean(axis=0)
        if modality == "rgb":
            dist = {pid: np.linalg.norm(mean - np.array(c)) for pid, (c, _) in PALETTE.items()}
        else:
            dist = {pid: abs(float(mean.mean()) - g) for pid, (_, g) in PALETTE.items()}
        pid = min(dist, key=dist.get)
        if dist[pid] > 40:
            return 0  # background / unknown
        if modality == "ir" and self.swap_ir:
            pid = pid % len(PALETTE) + 1
        return pid

    def embed(self, crops: list[np.ndarray], modality: str) -> np.ndarray:
        self.calls.append((modality, len(crops)))
        if not crops:
            return np.zeros((0, self.dim), np.float32)
        vecs = np.stack([self.basis[self.identity(c, modality)] for c in crops])
        vecs = vecs + self.noise * self.rng.normal(size=vecs.shape) / np.sqrt(self.dim)
        return (vecs / np.linalg.norm(vecs, axis=1, keepdims=True)).astype(np.float32)

    def embed_pair(self, rgb: list[np.ndarray], ir: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        return self.embed(rgb, "rgb"), self.embed(ir, "ir")


class ColourDetector:
    """Boxes of everything that differs from the plain background (for live streams without detection files)."""

    def __init__(self, min_area: int = 40) -> None:
        self.min_area = min_area

    def detect(self, image: np.ndarray, index: int) -> np.ndarray:
        gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        background = np.median(gray)
        mask = (np.abs(gray.astype(np.int16) - background) > 25).astype(np.uint8)
        if image.ndim == 3:  # saturated colours can share the background's grey level
            sat = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)[..., 1]
            mask |= (sat > 80).astype(np.uint8)
        count, _, stats, _ = cv2.connectedComponentsWithStats(mask)
        rows = [(x, y, x + w, y + h, 0.9) for x, y, w, h, area in stats[1:count] if area >= self.min_area]
        return np.asarray(rows, np.float32).reshape(-1, 5)


def tiny_export(folder: Path) -> Path:
    """An export folder whose 'embedder' is a 12-line ONNX graph: mean colour + 1, L2-normalised (D=3)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from hicmd.runtime.manifest import Artifact, InputSpec, Manifest, TensorSpec, sha256_file

    folder.mkdir(parents=True, exist_ok=True)
    nodes = [helper.make_node("Cast", ["images"], ["f"], to=TensorProto.FLOAT),
             helper.make_node("ReduceMean", ["f", "axes"], ["m"], keepdims=0),
             helper.make_node("Add", ["m", "one"], ["p"]),
             helper.make_node("LpNormalization", ["p"], ["embedding"], axis=1, p=2)]
    inits = [numpy_helper.from_array(np.array([1, 2], np.int64), "axes"),
             numpy_helper.from_array(np.array([1.0], np.float32), "one")]
    artifacts = []
    for modality in ("rgb", "ir"):
        graph = helper.make_graph(nodes, modality, [helper.make_tensor_value_info("images", TensorProto.UINT8,
                                                                                   ["n", 16, 8, 3])],
                                  [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["n", 3])], inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
        model.ir_version = 8
        onnx.save(model, folder / f"{modality}.onnx")
        artifacts.append(Artifact(modality, "embedder", modality, "fp32", "onnx", f"{modality}.onnx",
                                  sha256_file(folder / f"{modality}.onnx"),
                                  (TensorSpec("images", (-1, 16, 8, 3), "uint8"),),
                                  (TensorSpec("embedding", (-1, 3), "float32"),)))
    Manifest(config_name="test", config={}, checkpoint={}, embedding_dim=3, attribute_dim=0,
             input=InputSpec("images", "NHWC", "uint8", "RGB", 16, 8, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
             prototype_shape=(1, 1, 1), attribute_layout={}, opset=18, artifacts=tuple(artifacts)).save(folder)
    return folder
