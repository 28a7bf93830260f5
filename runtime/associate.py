"""Cross-modality association: which IR track is which RGB track, held stable with hysteresis. Torch-free.

Every time fresh embeddings arrive, live RGB and IR tracks are paired by the Hungarian algorithm
(scipy.optimize.linear_sum_assignment) on a cost from a `scorer`: cosine distance gated by `threshold` by default, or
appearance fused with time and geometry (runtime/fusion.py); pairs outside the scorer's gates never agree. A pair
becomes a match after it has been the agreeing assignment for `confirm` consecutive updates that brought new evidence
(one fewer where geometry or a time cue vouches for the pair: that cue is evidence appearance does not have), and a
match ends when one of its tracks ends or when it has disagreed for `confirm` such updates. Cross-modality re-id is
weak (rank-1 around 50-70 %), so aggregating over time is what keeps false matches rare. Where the scorer says which
pairs a cue rules out (with geometry: runtime/fusion.py), only that is disagreement: a held match no cue rules out
keeps its two tracks in the assignment even outside the gates, because a missing cue is no evidence against it.

A global id belongs to a person, not to a track: when a matched track ends, its partner keeps showing the match's
id, and a new match always takes the older of the ids involved.

Only tracks seen in their latest frame take part in the assignment. A match whose track is coasting (its person
hidden or gone) is held, not counted as disagreeing; but when the partner is confirmed with a new track of its own
camera (the tracker lost the person and started again), the new track takes the match over, global id included.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.optimize import linear_sum_assignment

from .fusion import BACKERS, FusionOptions, Scores, fused_scores
from .track import Track

__all__ = ["Match", "CrossMatcher", "cosine_distance"]

Key = tuple[int, int]  # (rgb track id, ir track id)
Scorer = Callable[[list[Track], list[Track]], Scores]
HOLD = 10.0  # cost bonus of a held match: above any pair's cost at the default weights (at most ~4.6), so it is kept


def cosine_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """1 - cosine similarity of unit-length rows: (N, D) x (M, D) -> (N, M)."""
    return 1.0 - np.asarray(a, np.float32) @ np.asarray(b, np.float32).T


@dataclass(eq=False)
class Match:
    rgb: Track
    ir: Track
    gid: int
    distance: float
    since: float
    disagree: int = 0

    @property
    def key(self) -> Key:
        return self.rgb.id, self.ir.id


class CrossMatcher:
    """Owns global ids and the confirmed RGB<->IR matches."""

    def __init__(self, threshold: float = 0.5, confirm: int = 3, scorer: Scorer | None = None) -> None:
        self.threshold, self.confirm = threshold, confirm
        appearance_only = FusionOptions(cues="appearance", appearance_gate=threshold)
        self.scorer = scorer or (lambda rgb, ir: fused_scores(rgb, ir, appearance_only, None))
        self.matches: dict[Key, Match] = {}
        self._streak: dict[Key, int] = {}
        self._seen: dict[Key, tuple[int, int]] = {}  # embedding counts when a pair was last counted
        self._next_gid = 1
        self.total_matches = self.total_lost = 0
        self.assigned: list[tuple[Track, Track, float]] = []  # the last round's assignment

    def register(self, track: Track) -> None:
        """Give a new track its own global id."""
        track.own_gid = track.gid = self._next_gid
        self._next_gid += 1

    def update(self, rgb: list[Track], ir: list[Track], t: float) -> list[dict]:
        """One association round over live tracks that have embeddings; returns match / match_lost events."""
        rgb = [tr for tr in rgb if tr.look.embedding is not None and tr.visible]
        ir = [tr for tr in ir if tr.look.embedding is not None and tr.visible]
        agreeing: dict[Key, tuple[Track, Track, float]] = {}
        vouched: dict[Key, str] = {}  # what let each agreeing pair in, for its match event
        self.assigned: list[tuple[Track, Track, float]] = []
        if rgb and ir:
            scores = self.scorer(rgb, ir)
            allowed, cost = scores.allowed, scores.cost
            if scores.refuted is not None:  # a held match no cue rules out keeps its two tracks
                held = np.array([[(r.id, i.id) in self.matches for i in ir] for r in rgb], bool).reshape(cost.shape)
                held &= ~scores.refuted
                allowed, cost = allowed | held, cost - HOLD * held
            # gated pairs go last, but keep their order: the assignment among them still feeds self-calibration
            cost = np.where(allowed, cost, cost + 1e6)
            rows, cols = linear_sum_assignment(cost)
            # every assigned pair, gated or not: candidate correspondences for self-calibration
            self.assigned = [(rgb[r], ir[c], float(scores.appearance[r, c])) for r, c in zip(rows, cols)]
            for r, c in zip(rows, cols):
                if allowed[r, c]:
                    agreeing[(rgb[r].id, ir[c].id)] = (rgb[r], ir[c], float(scores.appearance[r, c]))
                    if scores.voucher is not None and scores.voucher[r, c]:
                        vouched[(rgb[r].id, ir[c].id)] = str(scores.voucher[r, c])

        fresh: set[Key] = set()
        for key, (r, i, _) in agreeing.items():
            version = (r.look.count, i.look.count)
            if self._seen.get(key) != version:  # count only updates that bring new evidence
                self._seen[key] = version
                self._streak[key] = self._streak.get(key, 0) + 1
                fresh.add(key)
        self._streak = {k: v for k, v in self._streak.items() if k in agreeing}

        events = []
        for key, match in list(self.matches.items()):
            if key in agreeing:
                match.disagree, match.distance = 0, agreeing[key][2]
                continue
            if not (match.rgb.visible and match.ir.visible):
                continue  # a hidden person brings no evidence either way: hold the match
            version = (match.rgb.look.count, match.ir.look.count)
            if self._seen.get(key) != version:
                self._seen[key] = version
                match.disagree += 1
                if match.disagree >= self.confirm:
                    events.append(self._end(key, t, "disagree"))

        held = {m.rgb: m for m in self.matches.values()} | {m.ir: m for m in self.matches.values()}
        busy = {tr for tr, m in held.items() if m.rgb.visible and m.ir.visible}
        for key in sorted(fresh, key=lambda k: agreeing[k][2]):  # best pairs first
            r, i, dist = agreeing[key]
            # a pair that geometry or time vouches for needs one agreeing update fewer: that cue is evidence too
            needed = max(1, self.confirm - 1) if vouched.get(key) in BACKERS else self.confirm
            if key in self.matches or self._streak[key] < needed or r in busy or i in busy:
                continue
            # the older identity survives, so ids stay stable; a match handed over keeps its id
            handed = [m for m in dict.fromkeys((held.get(r), held.get(i))) if m is not None and m.key in self.matches]
            gid = min([r.own_gid, i.own_gid] + [m.gid for m in handed])
            for m in handed:
                events.append(self._end(m.key, t, "handover"))
            r.gid = i.gid = gid
            self.matches[key] = Match(r, i, gid, dist, t)
            busy |= {r, i}
            self.total_matches += 1
            events.append({"event": "match", "t": round(t, 4), "gid": gid, "rgb_track": r.id, "ir_track": i.id,
                           "distance": round(dist, 4), "cue": vouched.get(key, "appearance"),
                           "name": r.name or i.name})
        live = set(agreeing) | set(self.matches)
        self._seen = {k: v for k, v in self._seen.items() if k in live}
        return events

    def track_ended(self, track: Track, t: float) -> list[dict]:
        """Expire matches of a track that ended."""
        keys = [k for k, m in self.matches.items() if track in (m.rgb, m.ir)]
        self._streak = {k: v for k, v in self._streak.items() if (k[0] if track.camera == "rgb" else k[1]) != track.id}
        events = []
        for key in keys:
            match = self.matches[key]
            survivor = match.ir if track is match.rgb else match.rgb
            events.append(self._end(key, t, "track_end"))
            # the person is still in the other camera: their global id must not change because one tracker lost
            # them, and the next track of them in this camera that matches the survivor takes that id back
            survivor.own_gid = survivor.gid = match.gid
        return events

    def partner(self, track: Track) -> Match | None:
        for m in self.matches.values():
            if track is m.rgb or track is m.ir:
                return m
        return None

    def _end(self, key: Key, t: float, reason: str) -> dict:
        m = self.matches.pop(key)
        m.rgb.gid, m.ir.gid = m.rgb.own_gid, m.ir.own_gid
        self.total_lost += 1
        return {"event": "match_lost", "t": round(t, 4), "gid": m.gid, "rgb_track": m.rgb.id, "ir_track": m.ir.id,
                "reason": reason, "duration_s": round(t - m.since, 3)}
