"""Distance gates measured per model at export, recorded in manifest.json for the stream.

A cosine-distance gate is not a constant: each model has its own distance scale, and a model for unseen people
places the same person farther apart across modalities than one that knows them. So export measures, on the
dataset's held-out test split or on crops of people cut at their true boxes from clips with ground truth
(`--gate-clips`: footage like the stream's, 20-60 px people cut tight, which a model places farther apart than the
128x64 stills it was trained on), the distances the stream will compare:
- match (and gallery): cross-modality distances between "tracklets" (the mean of a few crops of one person in one
  modality, as a track's EMA embedding is). In scenes of `people` in view, the assignment picks each RGB
  tracklet's nearest IR tracklet; the gate is the largest distance at which those picks are right `precision` of the
  time (one update: the stream's confirmation over several updates makes its matches surer still). Every scene the
  tracklets allow is counted (combinatorics, not a sample), so the same embeddings always give the same gates. On
  footage the others in a scene are people of the same clip (the look-alikes one camera pair really sees), and a
  person is one person within a clip only (clips' gt ids need not name the same person across clips).
- split: single crops against their own tracklet within a modality; the gate lets 1 % of same-person crops through
  as "someone else" (a split needs two in a row).
Each gate comes with the figures it gives, so a user can see what the stream will do with it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
from hicmd.modality import MODALITIES

__all__ = ["GateClipsError", "footage_images", "measure_gates", "gates_lines", "tracklets"]

PER_TRACKLET = 3
OTHER_PRECISIONS = (0.9, 0.99)  # recorded beside the stream's gate: what a looser or stricter one gives
FEWEST_PICKS = 0.01  # a gate lets at least this share of the scenes' picks through (and is this one when none is right
#                      often enough)


class GateClipsError(ValueError):
    """The gate clips gave too few people to measure the gates on (`hicmd export --gate-clips`)."""


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


def _all_of_k(m: np.ndarray, n: int, k: int) -> np.ndarray:
    """C(m, k) / C(n, k): the chance that k of n candidates drawn without replacement all come from a given m."""
    out = np.ones(np.shape(m))
    for i in range(k):
        out *= np.clip(m - i, 0, None) / (n - i)
    return out


def _scene_curve(dist: np.ndarray, same: np.ndarray, people: int, together: np.ndarray | None,
                 grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scenes of `people` in view: an RGB tracklet (any that has a partner and enough others), one of its person's
    IR tracklets and people - 1 IR tracklets of others (where `together`, (N, M) bool, allows; anyone's by default),
    each drawn uniformly. The assignment picks the nearest IR candidate. Returns, for each gate in `grid`, the share
    of all such scenes whose pick is within the gate and right, and within it and wrong: the expectation over every
    scene, counted, not sampled, so a model's gates do not move with a seed (4,000 drawn scenes moved the demo
    model's match gate over 0.35-0.41)."""
    k = people - 1
    others = ~same if together is None else ~same & together
    rows = [r for r in range(len(dist)) if same[r].any() and others[r].sum() >= k]
    if not rows:
        raise ValueError(f"no scene of {people} people to draw (too few people seen by both cameras)")
    right, wrong = np.zeros(len(grid)), np.zeros(len(grid))
    for r in rows:
        o = np.sort(dist[r, others[r]])
        d = dist[r, same[r]]  # its partners' distances
        first_in = np.searchsorted(grid, d)  # each partner is within the gates from grid[first_in] on

        def none_nearer(t: np.ndarray, side: str) -> np.ndarray:  # no drawn other nearer than t (or at it)
            return _all_of_k(len(o) - np.searchsorted(o, t, side), len(o), k)

        def summed_from_gate(weights: np.ndarray | None) -> np.ndarray:  # over the partners each gate lets in
            return np.cumsum(np.bincount(first_in, weights, len(grid) + 1))[:-1]

        wins = none_nearer(d, "left")  # the partner is the nearest (it wins ties)
        # below a partner's distance only a nearer other can be picked: a wrong pick whenever one was drawn
        shut_out = len(d) - summed_from_gate(None)
        weight = 1.0 / (len(rows) * len(d))
        right += weight * summed_from_gate(wins)
        wrong += weight * (shut_out * (1.0 - none_nearer(grid, "right")) + summed_from_gate(1.0 - wins))
    return right, wrong


def _match_gates(dist: np.ndarray, same: np.ndarray, people: int, together: np.ndarray | None,
                 precisions: tuple[float, ...]) -> list[dict[str, float]]:
    """Per target precision, the largest gate at which the pairs the assignment picks are right that share of the
    time, looked for among the distances that let 1-100 % of the scenes' picks through (no farther: beyond the
    farthest pick a gate only lets in people the other camera does not see)."""
    grid = np.linspace(dist.min(), dist.max(), 2001)  # steps of 0.001 or finer
    right, wrong = _scene_curve(dist, same, people, together, grid)
    taken = right + wrong  # the share of scenes whose pick a gate lets through
    everyone = int(np.argmax(taken >= taken[-1] - 1e-9))  # the smallest gate through which every pick goes
    usable = (taken >= FEWEST_PICKS) & (np.arange(len(grid)) <= everyone)
    gates = []
    for precision in precisions:
        gate = {"threshold": float(grid[usable][0]), "precision": float("nan"), "recall": 0.0}
        meets = usable & (right >= precision * taken)
        if meets.any():
            i = int(np.flatnonzero(meets)[-1])
            gate = {"threshold": float(grid[i]), "precision": float(right[i] / taken[i]), "recall": float(right[i])}
        gates.append({**gate, "target_precision": precision})
    return gates


def measure_gates(embed: Callable[[np.ndarray, str], np.ndarray], images: dict[str, np.ndarray],
                  pids: dict[str, np.ndarray], source: str, precision: float = 0.95, people: int = 4,
                  scene: dict[str, np.ndarray] | None = None) -> dict:
    """`embed(uint8 NHWC images, modality) -> unit embeddings`; images / pids per modality of a test split or of
    footage (then `scene`, per modality and image, names the clip: a scene's people come from one clip)."""
    emb = {m: embed(images[m], m) for m in MODALITIES}
    tr = {m: tracklets(emb[m], pids[m]) for m in MODALITIES}
    if min(len(tr[m][0]) for m in tr) < 4:
        raise ValueError("too few test images per identity to measure gates (need 3+ per person and modality)")
    dist = 1.0 - tr["rgb"][0] @ tr["ir"][0].T
    same = tr["rgb"][1][:, None] == tr["ir"][1][None]
    together = None
    if scene is not None:  # a tracklet's clip is its person's (ids are per clip)
        clip_of = {m: dict(zip(pids[m].tolist(), scene[m].tolist())) for m in MODALITIES}
        rgb_clip, ir_clip = (np.asarray([clip_of[m][pid] for pid in tr[m][1].tolist()]) for m in MODALITIES)
        together = rgb_clip[:, None] == ir_clip[None]
    match, *others = _match_gates(dist, same, people, together, (precision, *OTHER_PRECISIONS))
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
        "match": match, "gallery": dict(match),
        "match_at_other_precisions": others,  # for a user choosing --match-threshold
        "split": {"threshold": split, "same_person_crops_beyond": 0.01},
        "distances": {"same_cross_median": float(np.median(dist[same])),
                      "different_cross_median": float(np.median(dist[~same])),
                      "same_within_median": float(np.median(within_all))},
    }


def gates_lines(gates: dict) -> list[str]:
    """What `hicmd export` says about the stream gates it recorded: the gates the stream will use, then (in a
    manifest that has them) the match gates at the other precisions, for a user choosing --match-threshold."""
    match = gates["match"]
    lines = [f"stream gates (from {gates['source']}): match {_gate_text(match, with_precision=True)} with "
             f"{gates['people_in_view']} people in view, split {gates['split']['threshold']:.3f}"]
    others = [f"precision {g['target_precision']:.2f}: {_gate_text(g)}"
              for g in gates.get("match_at_other_precisions", [])]
    if others:
        lines.append(f"other match gates (for --match-threshold): {'; '.join(others)}")
    return lines


def _gate_text(gate: dict, with_precision: bool = False) -> str:
    if np.isnan(float(gate["precision"])):  # "nan" in manifest.json: the fallback of `_match_gates`
        return (f"{gate['threshold']:.3f} (no gate reaches precision {gate['target_precision']:.2f}: this one lets "
                f"{FEWEST_PICKS * 100:g} % of picks through)")
    reached = f"precision {gate['precision']:.3f}, " if with_precision else ""
    return f"{gate['threshold']:.3f} ({reached}recall {gate['recall']:.3f})"


def footage_images(clips: list[Path], height: int, width: int, every: int = 2, min_height: int = 12):
    """(images, pids, scene) per modality: the people of clips with ground truth (gt_rgb.txt / gt_ir.txt beside
    rgb.mp4 / ir.mp4, as `hicmd synth --videos` writes them) cut at their boxes every `every`-th frame, every second
    such box jittered like a detector's (hicmd.data.footage.cut_people), as uint8 RGB at the model's input size.
    A person is (clip, gt id); `scene` is the clip's index."""
    import cv2

    from hicmd.data.footage import cut_people
    from hicmd.data.io import resize_rgb

    images: dict[str, list[np.ndarray]] = {m: [] for m in MODALITIES}
    pids: dict[str, list[int]] = {m: [] for m in MODALITIES}
    scene: dict[str, list[int]] = {m: [] for m in MODALITIES}
    for index, clip in enumerate(clips):
        for cam, _, pid, crop in cut_people(clip, every, min_height, rng=np.random.default_rng(index)):
            images[cam].append(resize_rgb(cv2.cvtColor(crop, cv2.COLOR_BGR2RGB), height, width))
            pids[cam].append(index * 1_000_000 + pid)
            scene[cam].append(index)
    if not all(images.values()):
        raise ValueError(f"no person of at least {min_height} px in both cameras' gt files")
    return ({m: np.stack(v) for m, v in images.items()}, {m: np.asarray(v) for m, v in pids.items()},
            {m: np.asarray(v) for m, v in scene.items()})


def onnx_embedder(path: Path, threads: int | None = None,
                  mirror: bool = False) -> Callable[[np.ndarray], np.ndarray]:
    """An exported embedder graph run by ONNX Runtime: the gates describe the graph the stream will run, and embed
    as it does (`mirror`: each image's embedding summed with its mirror image's, L2-normalised: runtime/embedder.py)."""
    from hicmd.runtime.cpu import cpu_session
    from hicmd.runtime.embedder import summed

    session = cpu_session(path, threads)

    def run_once(images: np.ndarray) -> np.ndarray:
        out = [session.run(["embedding"], {"images": images[i:i + 32]})[0] for i in range(0, len(images), 32)]
        return np.concatenate(out)

    def run(images: np.ndarray) -> np.ndarray:
        if not mirror:
            return run_once(images)
        return summed(run_once(images), run_once(np.ascontiguousarray(images[:, :, ::-1])))  # NHWC: W is axis 2

    return run
