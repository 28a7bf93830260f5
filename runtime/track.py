"""Per-camera multi-person tracker: ByteTrack-style two-stage IoU association (Hungarian), constant velocity.

Stage 1 matches all live tracks to high-confidence detections; stage 2 gives the tracks still unmatched a chance
against low-confidence detections (people half hidden often score low); unmatched high detections start tentative
tracks, confirmed after `min_hits` consecutive hits. Each track also carries its appearance embedding as an EMA.
Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = ["Track", "Appearance", "Tracker", "IouTracker", "camera_tracker", "iou_matrix", "proximity", "ema_update",
           "whole_in_frame", "crowded"]


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of [x1, y1, x2, y2] boxes: (N, 4) x (M, 4) -> (N, M)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float32)
    a, b = np.asarray(a, np.float32)[:, None, :4], np.asarray(b, np.float32)[None, :, :4]
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = iw * ih
    area = lambda x: (x[..., 2] - x[..., 0]) * (x[..., 3] - x[..., 1])  # noqa: E731
    return inter / np.maximum(area(a) + area(b) - inter, 1e-6)


def ema_update(old: np.ndarray | None, new: np.ndarray, alpha: float = 0.9, count: int | None = None) -> np.ndarray:
    """f <- alpha * f + (1 - alpha) * f_new, re-normalised to unit length; the first sample is taken as is.
    With `count` (how many samples `old` holds) the early steps are bias-corrected, as Adam's moments are, so the
    first crop, often of a person only half in view, does not outweigh the next ten."""
    new = np.asarray(new, np.float32)
    if old is None:
        mixed = new
    else:
        keep = alpha if count is None else alpha * (1.0 - alpha**count) / (1.0 - alpha ** (count + 1))
        mixed = keep * old + (1.0 - keep) * new
    return (mixed / max(float(np.linalg.norm(mixed)), 1e-12)).astype(np.float32)


@dataclass(eq=False)
class Appearance:
    """What a track looks like: the EMA of its crops' embeddings (unit length), and the count of crops in a row
    that looked like someone else (one is kept out of the EMA; two mean the box now follows another person)."""

    embedding: np.ndarray | None = None
    count: int = 0  # crops averaged into `embedding`
    last_age: int = -(10**9)  # the track's age at its last crop
    outliers: int = 0

    def due(self, age: int, every: int) -> bool:
        """Whether the track at `age` needs a new crop embedded (every `every` frames, at once when it has none)."""
        return self.embedding is None or age - self.last_age >= every

    def judge(self, embedding: np.ndarray, split_gate: float | None, crowded: bool = True) -> str:
        """"same"; "odd": a crop far from the settled embedding; "changed": far crops in a row, two while another
        person is or just was close enough for the tracker to have swapped them, four with no one near (far crops
        of a person alone are mostly their look changing: turning, stepping into shade; a box handed from one
        person to the next with no overlap, as where one leaves and another steps in, still splits, later). Same
        camera, so the distance is reliable, unlike across modalities."""
        if not split_gate or self.embedding is None or self.count < 3:
            return "same"
        far = 1.0 - float(np.dot(embedding, self.embedding)) > split_gate
        self.outliers = self.outliers + 1 if far else 0
        return "same" if not far else "odd" if self.outliers < (2 if crowded else 4) else "changed"

    def add(self, embedding: np.ndarray, alpha: float) -> None:
        self.embedding = ema_update(self.embedding, embedding, alpha, self.count)
        self.count += 1


@dataclass(eq=False)
class Track:
    """One person in one camera: its box and motion, what it looks like, and the ids it is shown with."""

    id: int
    camera: str
    box: np.ndarray  # [x1, y1, x2, y2] of the last detection
    score: float
    first_t: float
    last_t: float
    hits: int = 1
    age: int = 1  # frames of this camera since the track started
    misses: int = 0  # consecutive frames without a detection
    confirmed: bool = False
    entered: bool = False  # born after the camera's first frame: first_t is when the person came into view
    crowded_t: float = -1e9  # when its box last overlapped another person's (where IoU tracking can swap people)
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4, np.float32))
    look: Appearance = field(default_factory=Appearance)
    own_gid: int = 0  # shown when unmatched: its own, or that of a matched partner whose track ended
    gid: int = 0  # the global id shown: shared with its match in the other camera
    name: str | None = None  # gallery name, when one is close enough

    def predict(self) -> np.ndarray:
        return self.box + self.velocity * (self.misses + 1)

    @property
    def visible(self) -> bool:
        return self.misses == 0


def proximity(a: np.ndarray, b: np.ndarray, reach: float) -> np.ndarray:
    """Pairwise nearness of [x1, y1, x2, y2] boxes, (N, 4) x (M, 4) -> (N, M) in [0, 1]: 1 - the distance between
    centres in units of `reach` heights of the box in `a`; 0 beyond that or where the heights differ by more than
    a third (a box this far off and another size is someone else)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float32)
    a, b = np.asarray(a, np.float32)[:, None, :4], np.asarray(b, np.float32)[None, :, :4]
    height_a, height_b = a[..., 3] - a[..., 1], b[..., 3] - b[..., 1]
    centre_a, centre_b = (a[..., :2] + a[..., 2:]) / 2, (b[..., :2] + b[..., 2:]) / 2
    shift = np.linalg.norm(centre_a - centre_b, axis=-1)
    near = np.clip(1.0 - shift / np.maximum(reach * height_a, 1e-6), 0.0, 1.0)
    ratio = height_b / np.maximum(height_a, 1e-6)
    return np.where((ratio > 0.75) & (ratio < 4 / 3), near, 0.0).astype(np.float32)


def whole_in_frame(track: Track, size: tuple[int, int], border: float = 2.0) -> bool:
    """The box lies inside the frame (width, height): its person is not cut by the image edge."""
    x1, y1, x2, y2 = (float(v) for v in track.box)
    return x1 >= border and y1 >= border and x2 <= size[0] - border and y2 <= size[1] - border


def crowded(track: Track, others: list[Track], overlap: float = 0.05) -> bool:
    """Another visible person's box covers more than `overlap` of this track's box."""
    x1, y1, x2, y2 = (float(v) for v in track.box)
    area = max((x2 - x1) * (y2 - y1), 1e-6)
    for other in others:
        if other is not track and other.visible:
            ox1, oy1, ox2, oy2 = (float(v) for v in other.box)
            if max(0.0, min(x2, ox2) - max(x1, ox1)) * max(0.0, min(y2, oy2) - max(y1, oy1)) > overlap * area:
                return True
    return False


class Tracker(Protocol):
    """What the stream needs of one camera's tracker (IouTracker is the one hicmd ships)."""

    def update(self, dets: np.ndarray, t: float,
               size: tuple[int, int] | None = None) -> tuple[list[Track], list[Track]]:
        """Take a frame's detections (N, 5: x1, y1, x2, y2, score) at time `t` in an image of `size` (width,
        height; None: unknown); return (born, ended) tracks."""
        ...

    def split(self, track: Track) -> Track:
        """End `track` (its box now follows someone else) and start a new track on its box."""
        ...

    @property
    def confirmed(self) -> list[Track]:
        """Live tracks confirmed by enough hits (the ones embedded, matched and drawn)."""
        ...


class IouTracker:
    """Two-stage high/low confidence IoU tracker for one camera."""

    def __init__(self, camera: str, high: float = 0.5, low: float = 0.1, match_iou: float = 0.3,
                 low_iou: float = 0.5, min_hits: int = 2, max_misses: int = 30, reach: float = 0.5,
                 recover: int = 2, steadiness: float = 0.8) -> None:
        self.camera = camera
        self.reach = reach  # stage 1b: how far (in box heights) a box may move between frames without overlapping
        self.recover = recover  # stage 1b also takes back a person missed for up to this many frames (size given)
        self.steadiness = steadiness  # share of the old velocity kept at each step (the rest is the new step)
        self.high, self.low, self.match_iou, self.low_iou = high, low, match_iou, low_iou
        self.min_hits, self.max_misses = min_hits, max_misses
        self.tracks: list[Track] = []
        self._next_id = 1
        self.frames = 0

    def update(self, dets: np.ndarray, t: float,
               size: tuple[int, int] | None = None) -> tuple[list[Track], list[Track]]:
        """Advance one frame with (N, 5) detections in an image of `size` (width, height); returns (tracks
        confirmed now, confirmed tracks ended now)."""
        self.frames += 1
        dets = np.asarray(dets, np.float32).reshape(-1, 5) if len(dets) else np.zeros((0, 5), np.float32)
        high = dets[dets[:, 4] >= self.high]
        low = dets[(dets[:, 4] >= self.low) & (dets[:, 4] < self.high)]
        for track in self.tracks:
            track.age += 1

        pool = list(self.tracks)
        _, pool, high_left = self._assign(pool, high, self.match_iou, t)
        # stage 1b: a person crossing the view fast at a low frame rate (a thermal camera at 5-9 fps) moves more
        # than their own width between frames, so a track without a velocity yet overlaps its next box not at all.
        # The same holds for a thin (far) person the detector missed for a frame or two: their predicted box,
        # extrapolated from jittery boxes, no longer overlaps them. Not one last seen at the image edge: they left,
        # and whoever comes in there next is someone else.
        if self.reach > 0:
            near = [tr for tr in pool if tr.misses == 0 or tr.misses <= self.recover and size is not None
                    and whole_in_frame(tr, size)]
            moved, _, high_left = self._assign(near, high_left, 1e-6, t, lambda a, b: proximity(a, b, self.reach))
            pool = [tr for tr in pool if tr not in moved]
        # stage 2: only tracks that were seen in the previous frame may take a low-confidence detection
        recent = [tr for tr in pool if tr.misses == 0]
        matched2, _, _ = self._assign(recent, low, self.low_iou, t)
        unmatched = [tr for tr in pool if tr not in matched2]

        born, ended = [], []
        for track in unmatched:
            track.misses += 1
        keep = []
        for track in self.tracks:
            if track.misses == 0 and not track.confirmed and (track.hits >= self.min_hits or self.frames == 1):
                track.confirmed = True
                born.append(track)
            if track.misses > 0 and not track.confirmed:
                continue  # a tentative track that missed once was probably noise
            if track.misses > self.max_misses:
                ended.append(track)
                continue
            keep.append(track)
        for det in high_left:
            track = Track(self._next_id, self.camera, det[:4].copy(), float(det[4]), t, t, entered=self.frames > 1)
            self._next_id += 1
            if self.frames == 1 or self.min_hits <= 1:  # people already there at start need no warm-up
                track.confirmed = True
                born.append(track)
            keep.append(track)
        self.tracks = keep
        return born, ended

    def split(self, track: Track) -> Track:
        """Replace `track` by a new confirmed track on the same box: the box now follows someone else (the IoU
        association swapped two people where they crossed), which appearance shows and IoU cannot."""
        new = Track(self._next_id, self.camera, track.box.copy(), track.score, track.last_t, track.last_t,
                    hits=track.hits, age=track.age, misses=track.misses, confirmed=True,
                    velocity=track.velocity.copy())
        self._next_id += 1
        self.tracks[self.tracks.index(track)] = new
        return new

    def _assign(self, tracks: list[Track], dets: np.ndarray, min_iou: float, t: float,
                affinity=iou_matrix) -> tuple[list[Track], list[Track], np.ndarray]:
        """Hungarian on the affinity (IoU) with a gate; updates matched tracks; returns (matched, unmatched,
        unmatched dets)."""
        if not tracks or len(dets) == 0:
            return [], list(tracks), dets
        iou = affinity(np.stack([tr.predict() for tr in tracks]), dets)
        rows, cols = linear_sum_assignment(-iou)
        matched, used = [], set()
        for r, c in zip(rows, cols):
            if iou[r, c] < min_iou:
                continue
            track = tracks[r]
            box = dets[c, :4]
            # the centre's motion only: a walking person's box widens and narrows with the stride, which is
            # no motion to extrapolate (with it, predicted boxes overshoot and tracks fragment); and smoothed over
            # several frames: a detector's boxes jitter by a few pixels, a walker's pace changes slowly
            step = np.tile((box[:2] + box[2:] - track.box[:2] - track.box[2:]) / 2, 2)
            track.velocity = self.steadiness * track.velocity + (1.0 - self.steadiness) * step / (track.misses + 1)
            track.box, track.score, track.last_t = box.copy(), float(dets[c, 4]), t
            track.hits += 1
            track.misses = 0
            matched.append(track)
            used.add(c)
        left = [tr for tr in tracks if tr not in matched]
        rest = dets[[i for i in range(len(dets)) if i not in used]]
        return matched, left, rest

    @property
    def confirmed(self) -> list[Track]:
        return [tr for tr in self.tracks if tr.confirmed]


def camera_tracker(camera: str, fps: float, min_hits: int, max_lost_s: float, **options) -> IouTracker:
    """The stream's tracker for a camera at `fps`: a track unseen for `max_lost_s` ends, counted in the camera's own
    frames (at least 3), so a camera that is down for a while does not age its tracks."""
    return IouTracker(camera, min_hits=min_hits, max_misses=max(3, round(max_lost_s * fps)), **options)
