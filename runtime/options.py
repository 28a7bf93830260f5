"""What `hicmd stream` is asked to do (StreamOptions) and what it did (Summary). Torch-free."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from hicmd.errors import HicmdError

from .atomic import clashing_outputs
from .gallery import NAME_RE

__all__ = ["StreamError", "StreamOptions", "Summary"]


class StreamError(HicmdError, RuntimeError):
    """The pipeline cannot start or cannot go on (a bad option, a capture thread that failed)."""


@dataclass
class StreamOptions:
    rgb: str | None  # None: IR only (the night scenario: people named from a gallery)
    ir: str
    detector: str | None = None  # "hog" (default) or a YOLO-style .onnx
    det_conf: float | None = None  # detector score / NMS IoU thresholds (None: HOG 0.3 / 0.5, ONNX 0.25 / 0.45)
    det_iou: float | None = None
    detections_rgb: str | None = None  # MOTChallenge text, frame-indexed (overrides the detector)
    detections_ir: str | None = None
    embed_every: int = 8  # re-embed a track every N frames of its camera (and when it is new)
    match_threshold: float | None = None  # cosine gate for RGB<->IR matches and gallery names (None: the model's)
    confirm: int = 3  # consecutive agreeing updates before a match is announced (and disagreeing before it ends)
    ema: float = 0.9
    split_distance: float | None = None  # two crops in a row this far apart split a track (0: never; None: model's)
    gallery: str | None = None
    enroll: str | None = None  # save crops of the only person in view into gallery/<enroll>/
    enroll_max: int = 20
    ir_range: tuple[float, float] = (20.0, 40.0)
    save: str | None = None
    save_tracks: str | None = None  # folder: rgb.txt / ir.txt in MOTChallenge format (for scoring)
    events: str | Path | IO[str] | None = None  # None = stdout
    overwrite_events: bool = False  # an existing events file is appended to unless this is set
    show: bool = False
    max_frames: int | None = None  # stop after this many processed RGB+IR steps
    stats_every: float = 5.0
    pair_tolerance_ms: float | None = None  # default: half an RGB frame period
    realtime: bool | None = None  # None: files in order (no drops), live sources newest-frame-only
    loop: bool = False  # replay file sources
    fps_rgb: float | None = None  # frame rate of a folder source (30 if not given), or to override a file's
    fps_ir: float | None = None
    min_hits: int = 2
    max_lost_s: float = 2.0  # a track unseen for this long (in its camera's frames) ends
    cues: str = "geometry"  # appearance | time (appearance + time) | geometry (appearance + time + geometry)
    calibration: str | None = None  # calibration.json (RGB->IR ground homography); None: self-calibrate
    self_calibrate: bool = True  # fit the homography online from confident matches when none is given
    geometry_gate: float = 0.5  # foot-point distance (IR box heights) beyond which a pair cannot match
    geometry_trust: float = 0.2  # a self-fitted map's uncertainty (IR box heights) beyond which geometry cannot vouch
    weight_geometry: float = 1.0
    weight_time: float = 0.3

    def __post_init__(self) -> None:
        for name, fps in (("--fps-rgb", self.fps_rgb), ("--fps-ir", self.fps_ir)):
            if fps is not None and not 0 < fps <= 1000:
                raise StreamError(f"{name} {fps:g}: give the source's frame rate in frames per second (0 < fps <= "
                                  "1000), or leave it out to use the file's own")
        for name, (low, high, what) in _RANGES.items():
            value = getattr(self, name)
            if value is not None and not low <= value <= high:  # NaN fails every comparison
                raise StreamError(f"--{name.replace('_', '-')} {value:g}: {what}")
        if self.rgb and Path(self.rgb).exists() and Path(self.ir).exists() and os.path.samefile(self.rgb, self.ir):
            raise StreamError(f"--rgb and --ir are the same {'folder' if Path(self.ir).is_dir() else 'file'} "
                              f"{self.ir}: give the visible camera's recording and the thermal camera's")
        if self.calibration and self.cues != "geometry":
            raise StreamError(f"--calibration is the geometry cue: it needs --cues geometry (the default), not "
                              f"--cues {self.cues}")
        if self.detections_rgb and not self.rgb:
            raise StreamError("--detections-rgb needs --rgb (without it the stream watches the IR camera alone)")
        if self.enroll is not None and not NAME_RE.fullmatch(self.enroll):
            raise StreamError(f"--enroll {self.enroll!r}: a name of letters, digits, '_', '-' or '.' (up to 64), "
                              "which becomes the gallery's folder for the person")
        problem = clashing_outputs({"--save": self.save, "--save-tracks": self.save_tracks,
                                    "--events": self.events if isinstance(self.events, (str, Path)) else None},
                                   {"--rgb": self.rgb, "--ir": self.ir, "--detections-rgb": self.detections_rgb,
                                    "--detections-ir": self.detections_ir, "--calibration": self.calibration,
                                    "--gallery": self.gallery, "--detector": self.detector})
        if problem:
            raise StreamError(problem)


_FINITE = 1e300  # an upper bound that refuses infinity (and NaN, as every bound does)
# option: (lowest, highest, what to give instead); the cost weights and gates go into a Hungarian cost, where a NaN or
# an infinity makes the assignment itself fail mid-run
_RANGES: dict[str, tuple[float, float, str]] = {
    "embed_every": (1, _FINITE, "give a number of frames, at least 1"),
    "confirm": (1, _FINITE, "give a number of updates, at least 1"),
    "match_threshold": (0.0, 2.0, "it is a cosine distance: give 0 to 2, or leave it out for the model's gate"),
    "split_distance": (0.0, 2.0, "it is a cosine distance: give 0 (never split) to 2"),
    "geometry_gate": (1e-6, _FINITE, "give a distance in IR box heights above 0 (default 0.5)"),
    "geometry_trust": (0.0, _FINITE, "give an uncertainty in IR box heights, 0 or more (default 0.2)"),
    "weight_geometry": (0.0, _FINITE, "give a finite weight, 0 or more (default 1.0)"),
    "weight_time": (0.0, _FINITE, "give a finite weight, 0 or more (default 0.3)"),
    "max_frames": (1, _FINITE, "give a number of steps, at least 1, or leave it out to run to the end"),
    "stats_every": (1e-3, _FINITE, "give the seconds between stats events, above 0 (default 5)"),
    "pair_tolerance_ms": (1e-3, _FINITE, "give milliseconds above 0, or leave it out for half a frame period"),
}


@dataclass
class Summary:
    duration_s: float
    steps: int
    interrupted: bool
    frames: dict[str, dict[str, int]]
    tracks: dict[str, int]
    matches: int
    matches_lost: int
    events: dict[str, int]
    stages: dict[str, dict[str, float]]
    pair_skew_ms_p50: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
