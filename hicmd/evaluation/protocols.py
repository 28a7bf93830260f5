"""Query/gallery construction for the RegDB, SYSU-MM01 and LLCM protocols
(docs/reference/evaluation.md §5, §6, §9, §10).

Trials are numbered 1..10 everywhere. Trial t uses:
- RegDB: the split files idx/test_{visible,thermal}_t.txt (one trained model per split in the paper protocol);
- SYSU official family: row t of every rand_perm_cam.mat permutation (1-based file indices), 1 or 10 shots;
- SYSU/LLCM AGW family (no permutation file): `random.seed(t - 1)` and one `random.choice(sorted(files))` per
  (pid, camera), pids ascending, cameras ascending - the same draws as AGW/DEEN test.py trials 0..9.

Everything here works on lists of `hicmd.data.Record`; only `build_trials` touches the disk.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hicmd.evaluation.metrics import Metrics, eval_llcm, eval_regdb, eval_sysu

if TYPE_CHECKING:
    from hicmd.data import Record

__all__ = [
    "Trial",
    "Permutations",
    "load_permutations",
    "group_by_pid_camera",
    "seeded_draw",
    "permuted_draw",
    "sysu_gallery",
    "regdb_trial",
    "llcm_trial",
    "build_trials",
    "score",
    "SYSU_MODES",
    "DIRECTIONS",
    "setting_label",
]

SYSU_MODES = {"all": (1, 2, 4, 5), "indoor": (1, 2)}
DIRECTIONS = ("v2t", "t2v")  # visible query -> thermal/IR gallery, and the reverse


@dataclass(frozen=True)
class Trial:
    """One query/gallery evaluation; `kind` picks the metric rules (regdb | sysu | llcm)."""

    kind: str
    setting: str  # what the row of the results table is called, e.g. "v2t" or "all-search 1-shot"
    trial: int
    query: list[Record]
    gallery: list[Record]
    # rank ties as the official MATLAB code does (sort is stable there, over a gallery built camera by camera);
    # the AGW family ranks with numpy's default quicksort, where ties are unspecified
    stable: bool = False


def setting_label(kind: str, setting: str) -> str:
    """Readable name of a setting for tables and plots."""
    names = {"regdb": {"v2t": "visible -> thermal", "t2v": "thermal -> visible"},
             "llcm": {"v2t": "VIS -> IR", "t2v": "IR -> VIS"}}
    return names.get(kind, {}).get(setting, setting)


# --------------------------------------------------------------------------- SYSU official permutations


@dataclass(frozen=True)
class Permutations:
    """rand_perm_cam.mat: cells[cam - 1][pid - 1] is a (trials, n_images) array of 1-based file indices;
    row t - 1 is a permutation of 1..n_images for trial t."""

    cells: tuple[tuple[np.ndarray, ...], ...]

    @property
    def num_trials(self) -> int:
        return max(a.shape[0] for cam in self.cells for a in cam if a.size)

    def pick(self, camera: int, pid: int, trial: int, shots: int, count: int) -> list[int]:
        """0-based indices into the sorted files of (camera, pid) for this trial."""
        if not 1 <= camera <= len(self.cells) or not 1 <= pid <= len(self.cells[camera - 1]):
            raise ValueError(f"the permutation file has no entry for cam{camera} pid {pid:04d}")
        perm = self.cells[camera - 1][pid - 1]
        if perm.ndim != 2 or perm.shape[1] != count:
            raise ValueError(f"the permutation file lists {perm.shape[-1]} images for cam{camera}/{pid:04d} but the "
                             f"dataset has {count}; use the rand_perm_cam.mat that matches this copy of SYSU-MM01")
        if not 1 <= trial <= perm.shape[0]:
            raise ValueError(f"trial {trial} is outside the permutation file's 1..{perm.shape[0]}")
        return [int(i) - 1 for i in perm[trial - 1, :shots]]


def load_permutations(path: str | Path) -> Permutations:
    """Read the official rand_perm_cam.mat (scipy.io.loadmat: a (6, 1) cell of (n_pids, 1) cells)."""
    import scipy.io
    from scipy.io.matlab import MatReadError

    try:
        data = scipy.io.loadmat(str(path))
    except (OSError, ValueError, MatReadError) as exc:  # MatReadError: a file too short to be one
        raise ValueError(f"cannot read {path} as a MATLAB file: {exc}") from None
    table = data.get("rand_perm_cam")
    if table is None or table.dtype != object or table.size < 6:
        raise ValueError(f"{path} has no 6-camera 'rand_perm_cam' cell array; use the official SYSU-MM01 file")
    cells = tuple(tuple(np.asarray(entry[0]) for entry in np.asarray(cam).reshape(-1, 1))
                  for cam in (table.reshape(-1)[c] for c in range(table.size)))
    return Permutations(cells)


# --------------------------------------------------------------------------- gallery draws


def group_by_pid_camera(records: list[Record]) -> dict[tuple[int, int], list[Record]]:
    """(pid, camera) -> records sorted by path string, the order AGW and MATLAB index into."""
    groups: dict[tuple[int, int], list[Record]] = defaultdict(list)
    for record in records:
        groups[(record.pid, record.camera)].append(record)
    return {key: sorted(group, key=lambda r: str(r.path)) for key, group in sorted(groups.items())}


def seeded_draw(candidates: list[Record], cameras: tuple[int, ...] | None, trial: int) -> list[Record]:
    """AGW/DEEN single-shot gallery: random.seed(trial - 1), one random.choice per (pid, camera) in
    ascending pid then camera order (cameras=None: every camera present)."""
    groups = group_by_pid_camera(candidates)
    rng = random.Random(trial - 1)  # Random(seed) draws exactly what random.seed(seed) + random.choice draw
    return [rng.choice(files) for (pid, cam), files in groups.items() if cameras is None or cam in cameras]


def permuted_draw(candidates: list[Record], cameras: tuple[int, ...], trial: int, shots: int,
                  perm: Permutations) -> list[Record]:
    """Official SYSU gallery: the first `shots` entries of row `trial` of each (camera, pid) permutation, camera by
    camera and pid by pid within a camera, the order get_testing_set.m builds it in (it decides tied ranks)."""
    groups = group_by_pid_camera(candidates)
    gallery = []
    for camera in cameras:
        for (pid, cam), files in groups.items():
            if cam == camera:
                gallery += [files[i] for i in perm.pick(cam, pid, trial, shots, len(files))]
    return gallery


def sysu_gallery(candidates: list[Record], mode: str, trial: int, shots: int = 1,
                 perm: Permutations | None = None) -> list[Record]:
    """SYSU-MM01 gallery of one trial: all-search (cams 1, 2, 4, 5) or indoor (1, 2); 1 or 10 shots."""
    if mode not in SYSU_MODES:
        raise ValueError(f"SYSU mode must be one of {', '.join(SYSU_MODES)}, got {mode!r}")
    if perm is not None:
        return permuted_draw(candidates, SYSU_MODES[mode], trial, shots, perm)
    if shots != 1:
        raise ValueError("multi-shot SYSU galleries need the official permutations (rand_perm_cam.mat)")
    return seeded_draw(candidates, SYSU_MODES[mode], trial)


def regdb_trial(visible: list[Record], thermal: list[Record], direction: str, trial: int) -> Trial:
    """RegDB: the whole test set of one modality queries the whole test set of the other."""
    query, gallery = (visible, thermal) if direction == "v2t" else (thermal, visible)
    return Trial("regdb", direction, trial, query, gallery)


def llcm_trial(visible: list[Record], infrared: list[Record], direction: str, trial: int) -> Trial:
    """LLCM: every image of the query modality; a seeded single-shot gallery of the other."""
    query, candidates = (visible, infrared) if direction == "v2t" else (infrared, visible)
    return Trial("llcm", direction, trial, query, seeded_draw(candidates, None, trial))


# --------------------------------------------------------------------------- from disk


def build_trials(kind: str, root: str | Path, trials: list[int], directions: tuple[str, ...] = DIRECTIONS,
                 modes: tuple[str, ...] = ("all",), shots: int = 1, perm: Permutations | None = None) -> list[Trial]:
    """All trials of one dataset. Raises hicmd.data.DataError for a dataset that cannot be read."""
    from hicmd.data import load_split

    out: list[Trial] = []
    if kind == "regdb":
        for t in trials:
            visible, thermal = load_split(kind, root, "query", t), load_split(kind, root, "gallery", t)
            out += [regdb_trial(visible, thermal, d, t) for d in directions]
    elif kind == "sysu":
        query, candidates = load_split(kind, root, "query"), load_split(kind, root, "gallery")
        for mode in modes:
            setting = f"{mode}-search {shots}-shot"
            out += [Trial(kind, setting, t, query, sysu_gallery(candidates, mode, t, shots, perm), perm is not None)
                    for t in trials]
    elif kind == "llcm":
        infrared, visible = load_split(kind, root, "query"), load_split(kind, root, "gallery")
        out += [llcm_trial(visible, infrared, d, t) for d in directions for t in trials]
    else:
        raise ValueError(f"dataset kind must be regdb, sysu or llcm, got {kind!r}")
    return out


def score(trial: Trial, query_features: np.ndarray, gallery_features: np.ndarray) -> Metrics:
    """Metrics of one trial from L2-normalised features: distance = -q.g^T in float64 (AGW)."""
    distmat = -np.asarray(query_features, np.float64) @ np.asarray(gallery_features, np.float64).T
    q_pids = np.array([r.pid for r in trial.query])
    g_pids = np.array([r.pid for r in trial.gallery])
    if trial.kind == "regdb":
        return eval_regdb(distmat, q_pids, g_pids)
    q_cams = np.array([r.camera for r in trial.query])
    g_cams = np.array([r.camera for r in trial.gallery])
    if trial.kind == "sysu":
        return eval_sysu(distmat, q_pids, g_pids, q_cams, g_cams, stable=trial.stable)
    return eval_llcm(distmat, q_pids, g_pids, q_cams, g_cams)
