"""Distance gates measured per model at export, recorded in manifest.json for the stream.

A cosine-distance gate is not a constant: each model has its own distance scale, and a model for unseen people
places the same person farther apart across modalities than one that knows them. So export measures, on the
dataset's held-out test split, the distances the stream will compare:
- match (and gallery): cross-modality distances between "tracklets" (the mean of a few crops of one person in one
  modality, as a track's EMA embedding is). In simulated scenes of `people` in view, the assignment picks each RGB
  tracklet's nearest IR tracklet; the gate is the largest distance at which those picks are right `precision` of the
  time (one update: the stream's confirmation over several updates makes its matches surer still).
- split: single crops against their own tracklet within a modality; the gate lets 1 % of same-person crops through
  as "someone else" (a split needs two in a row).
Each gate comes with the figures it gives, so a user can see what the stream will do with it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
from hicmd.modality import MODALITIES

__all__ = ["measure_gates", "tracklets"]

PER_TRACKLET = 3


def tracklets(embeddings: np.ndarray, pids: np.ndarray, per: int = PER_TRACKLET) -> tuple[np.ndarray, np.ndarray]:
    """Unit-length means of `per` consecutive crops of each identity (a track's smoothed embedding)."""
    means, ids = [], []
    for pid in np.unique(pids):
        rows = embeddings[pids == pid]
        for start in range(0, len(rows) - per + 1, per):
            m = rows[start:start + per].mean(0)
            means.append(m / max(np.linalg.norm(m), 1e-12))
            ids.append(pid)
    return np.asarray(means, np.float32), np.asarray(ids)


def _scenes(dist: np.ndarray, same: np.ndarray, people: int, draws: int = 4000, seed: int = 0):
    """Simulated scenes: an RGB tracklet, its person's IR tracklet and people - 1 others'. Returns, per scene, the
    distance of the nearest IR candidate and whether it is the right person (what the assignment would pick)."""
    rng = np.random.default_rng(seed)
    nearest, right = [], []
    rows = [r for r in range(len(dist)) if same[r].any() and (~same[r]).sum() >= people - 1]
    for _ in range(draws):
        r = rows[rng.integers(len(rows))]
        partner = rng.choice(np.flatnonzero(same[r]))
        others = rng.choice(np.flatnonzero(~same[r]), people - 1, replace=False)
        cand = dist[r, np.r_[partner, others]]
        nearest.append(cand.min())
        right.append(cand.argmin() == 0)
    return np.asarray(nearest), np.asarray(right)


def _match_gate(nearest: np.ndarray, right: np.ndarray, precision: float) -> dict[str, float]:
    """The largest gate at which the pairs the assignment picks are right `precision` of the time."""
    best = {"threshold": float(np.quantile(nearest, 0.01)), "precision": float("nan"), "recall": 0.0}
    for g in np.unique(np.quantile(nearest, np.linspace(0.01, 1.0, 100))):
        taken = nearest <= g
        p = float(right[taken].mean()) if taken.any() else 1.0
        if p >= precision:
            best = {"threshold": float(g), "precision": p, "recall": float((taken & right).mean())}
    return best


def measure_gates(embed: Callable[[np.ndarray, str], np.ndarray], images: dict[str, np.ndarray],
                  pids: dict[str, np.ndarray], source: str, precision: float = 0.95, people: int = 4) -> dict:
    """`embed(uint8 NHWC images, modality) -> unit embeddings`; images / pids per modality of a test split."""
    emb = {m: embed(images[m], m) for m in MODALITIES}
    tr = {m: tracklets(emb[m], pids[m]) for m in MODALITIES}
    if min(len(tr[m][0]) for m in tr) < 4:
        raise ValueError("too few test images per identity to measure gates (need 3+ per person and modality)")
    dist = 1.0 - tr["rgb"][0] @ tr["ir"][0].T
    same = tr["rgb"][1][:, None] == tr["ir"][1][None]
    match = _match_gate(*_scenes(dist, same, people), precision)
    within = []
    for m in MODALITIES:
        means, ids = tr[m]
        centre = {pid: means[ids == pid].mean(0) for pid in np.unique(ids)}
        for pid, c in centre.items():
            c = c / max(np.linalg.norm(c), 1e-12)
            within.append(1.0 - emb[m][pids[m] == pid] @ c)
    within_all = np.concatenate(within)
    split = float(min(np.quantile(within_all, 0.99), 2.0))
    return {
        "source": source, "people_in_view": people, "tracklet_crops": PER_TRACKLET,
        "match": {**match, "target_precision": precision},
        "gallery": {**match, "target_precision": precision},
        "split": {"threshold": split, "same_person_crops_beyond": 0.01},
        "distances": {"same_cross_median": float(np.median(dist[same])),
                      "different_cross_median": float(np.median(dist[~same])),
                      "same_within_median": float(np.median(within_all))},
    }


def onnx_embedder(path: Path, threads: int | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """An exported embedder graph run by ONNX Runtime: the gates describe the graph the stream will run."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(images: np.ndarray) -> np.ndarray:
        out = [session.run(["embedding"], {"images": images[i:i + 32]})[0] for i in range(0, len(images), 32)]
        return np.concatenate(out)

    return run
