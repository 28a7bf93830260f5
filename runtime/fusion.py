"""The RGB<->IR association cost: appearance, fused with time and ground-plane geometry. Torch-free.

Cross-modality appearance is weak on people a model has never seen (a few tens of per cent rank-1), but two cameras
watching one place give two more cues:
- time: the same person is in both views at the same time and enters them at about the same moment;
- geometry: a person's foot point in the RGB image, mapped by the ground-plane homography, lands on their foot point
  in the IR image (runtime/geometry.py), and it moves with the same velocity.

Each cue has a gate (a pair beyond it can never match) and a weight in the Hungarian cost. Without a calibration
(none given and self-calibration not fitted yet) the cost falls back to appearance + time, gated by the appearance
threshold alone. With one, a pair must be close on the ground; appearance may then be looser, because geometry
tells apart the people that appearance confuses. A self-fitted homography is only as good as the foot points it was
fitted on: exact along the paths of the people it came from, a guess far from them. Where its uncertainty at a
person's foot (runtime/geometry.py `uncertainty_px`) exceeds `geometry_trust` IR box heights, geometry neither
vouches for a pair nor lets a look-alike in: appearance decides alone there, on its own gate.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from .geometry import Calibration
from .track import Track

__all__ = ["CUES", "VOUCHERS", "BACKERS", "FusionOptions", "FootHistory", "AloneTogether", "Scores", "fused_scores",
           "foot"]

CUES = ("appearance", "time", "geometry")  # each setting adds one cue to the ones before it
# what let an allowed pair match, strongest first, as match events name it: geometry placed them together, they were
# alone in both views together, they entered both views together, or appearance alone was close enough
VOUCHERS = ("geometry", "alone", "entered", "appearance")
BACKERS = VOUCHERS[:-1]  # the cues beyond appearance: a pair one of them vouches for is backed by more than a look


@dataclass(frozen=True)
class FusionOptions:
    cues: str = "geometry"  # the richest cue used: appearance | time | geometry (appearance + time + geometry)
    appearance_gate: float = 0.5  # cosine distance: the match gate when appearance has to decide alone
    geometry_appearance_gate: float = 1.2  # looser appearance gate for pairs that geometry places together
    geometry_gate: float = 0.5  # foot-point distance, in IR box heights, beyond which a pair is impossible
    weight_geometry: float = 1.0
    weight_time: float = 0.3
    entry_scale_s: float = 2.0  # entry-time difference at which the time cue is at its worst
    entry_gate_s: float = 0.5  # people who came into both views this close in time, and no one else did, may match
    #                            on the looser appearance gate before any calibration (0: never)
    # a track that was the only person in its view while another was the only one in the other, for this long, may
    # match it on the looser gate before any calibration (0: never). On SynthVI's separate rig, where some people
    # are seen by one camera only, two such people alone at the same moment for half a second made 6 of 129 lone-
    # walker matches wrong; 0.75 s: 2 of 120, one person fewer matched (README, "Alone together for 0.75 s")
    alone_s: float = 0.75
    velocity_scale: float = 1.0  # velocity disagreement (IR box heights per second) at which it is at its worst
    geometry_trust: float = 0.2  # geometry decides a pair only where the fitted map's uncertainty (1 sigma, IR box
    #                              heights) at the RGB foot is below this (runtime/geometry.py uncertainty_px)
    # where the map is a guess it still rules a held pair out when it places the two farther apart than the gate by
    # more than this many of its standard deviations: a guess is not off by five box heights (SynthVI separate rig,
    # 140 clips: 2 more people matched, no match lost or made wrong; README "Geometry that is a guess")
    refute_sigmas: float = 3.0

    def __post_init__(self) -> None:
        if self.cues not in CUES:
            raise ValueError(f"cues {self.cues!r}: use one of {', '.join(CUES)}")

    @property
    def use_time(self) -> bool:
        return self.cues in ("time", "geometry")

    @property
    def use_geometry(self) -> bool:
        return self.cues == "geometry"


FOOT_RAISE = 0.06  # the ground point under a person, as a fraction of the box height above the box's bottom edge


def foot(track: Track) -> np.ndarray:
    """Where the person stands: the centre of the box's bottom, raised by FOOT_RAISE of its height. The box's
    bottom edge is the lowest pixel of the feet, in front of the ground point between them; two cameras looking from
    different sides see different fronts, so the raw bottom edges of one person are not one ground point. On SynthVI's
    two-sided rig they sat 6.8 px apart under the true homography (box bottoms) and 1.1 px apart raised by 6 % (the
    best raise, measured on the ground-truth boxes; see README). On a bi-spectrum camera the views coincide and the
    raise changes nothing."""
    x1, y1, x2, y2 = (float(v) for v in track.box)
    return np.array([(x1 + x2) / 2, y2 - FOOT_RAISE * (y2 - y1)])


def _height(track: Track) -> float:
    return max(float(track.box[3] - track.box[1]), 1.0)


class FootHistory:
    """The last second or so of foot points of every live track, for velocities."""

    def __init__(self, span_s: float = 1.0) -> None:
        self.span_s = span_s
        self._points: dict[tuple[str, int], deque[tuple[float, np.ndarray]]] = {}

    def add(self, tracks: list[Track], t: float) -> None:
        for track in tracks:
            if track.visible:
                points = self._points.setdefault((track.camera, track.id), deque(maxlen=64))
                points.append((t, foot(track)))
                while points and t - points[0][0] > self.span_s:
                    points.popleft()

    def forget(self, track: Track) -> None:
        self._points.pop((track.camera, track.id), None)

    def span(self, track: Track) -> tuple[np.ndarray, np.ndarray, float] | None:
        """(oldest foot, newest foot, seconds between them) when there is at least 0.3 s of history."""
        points = self._points.get((track.camera, track.id))
        if not points or points[-1][0] - points[0][0] < 0.3:
            return None
        return points[0][1], points[-1][1], points[-1][0] - points[0][0]


class AloneTogether:
    """The pairs of tracks that were each the only person in their camera's view at the same time, for a while.

    When one camera shows exactly one person and the other camera shows exactly one person, over a second or more,
    they are almost always one person walking through the place both watch: the time cue for the lone walker, who
    gives neither an entry to compare (there from the start, or entering with no one to tell apart) nor a second
    person to calibrate geometry with. Coasting tracks count as present (someone hidden behind another person is
    still there), so an occlusion does not make a crowd look like a lone walker. Once earned, a pair keeps it: the
    person is no less themselves when somebody else walks in."""

    def __init__(self, span_s: float) -> None:
        self.span_s = span_s
        self.pairs: set[tuple[int, int]] = set()
        self._current: tuple[int, int] | None = None
        self._since = 0.0

    def update(self, rgb: list[Track], ir: list[Track], t: float) -> None:
        """Every paired step, with each camera's live (confirmed) tracks, visible or coasting."""
        rgb, ir = _present(rgb), _present(ir)
        key = (rgb[0].id, ir[0].id) if len(rgb) == 1 and len(ir) == 1 else None
        if key != self._current:
            self._current, self._since = key, t
        if key is not None and self.span_s > 0 and t - self._since >= self.span_s:
            self.pairs.add(key)

    def forget(self, track: Track) -> None:
        side = 0 if track.camera == "rgb" else 1
        self.pairs = {k for k in self.pairs if k[side] != track.id}


def _present(tracks: list[Track], established: int = 5) -> list[Track]:
    """The people in view: visible tracks, and coasting ones that had been seen for a while (a track of a frame or
    two that vanished again is a false or doubled detection far more often than a person hiding)."""
    return [tr for tr in tracks if tr.visible or tr.hits >= established]


@dataclass
class Scores:
    cost: np.ndarray  # (N, M) Hungarian cost
    allowed: np.ndarray  # (N, M) bool: pairs inside every gate
    appearance: np.ndarray  # (N, M) cosine distance
    geometry: np.ndarray | None  # (N, M) foot-point distance in IR box heights (None without a calibration)
    refuted: np.ndarray | None = None  # (N, M) bool: pairs a cue rules out. A held match not ruled out stays even
    #                                    outside the gates (None: every pair outside them is ruled out)
    voucher: np.ndarray | None = None  # (N, M) str: for allowed pairs, the strongest cue that let them in (VOUCHERS)


def fused_scores(rgb: list[Track], ir: list[Track], opts: FusionOptions, calibration: Calibration | None,
                 history: FootHistory | None = None, alone: frozenset[tuple[int, int]] = frozenset(),
                 present: tuple[list[Track], list[Track]] = ([], []), unaccounted: int = 0) -> Scores:
    """The cost and gates of every RGB x IR pair. `alone`: the (RGB track id, IR track id) pairs that have been
    alone together (AloneTogether), a time cue. `present`: every live track of each camera, hidden ones too (the
    pairs scored are those seen now): someone who entered with a person is their rival while briefly hidden.
    `unaccounted`: how many people there since a camera's first frame have no match yet. Their entry was never
    seen, so any newcomer in the other camera may be their partner: while one waits, an entry proves nothing (on
    SynthVI's separate rig, three RGB entrants whose partner the IR camera had shown from the start were matched
    to the person only the IR camera saw, who happened to walk in with them)."""
    emb_r = np.stack([tr.look.embedding for tr in rgb]).astype(np.float32)
    emb_i = np.stack([tr.look.embedding for tr in ir]).astype(np.float32)
    appearance = 1.0 - emb_r @ emb_i.T
    cost = appearance.copy()
    if opts.use_time:  # people enter both views at about the same moment (both 0 for people there from the start)
        entry = np.abs(np.array([tr.first_t for tr in rgb])[:, None] - np.array([tr.first_t for tr in ir])[None])
        cost += opts.weight_time * np.minimum(entry / opts.entry_scale_s, 1.0)
    if not (opts.use_geometry and calibration is not None):
        allowed = appearance <= opts.appearance_gate
        if opts.use_time:  # the time cues strong enough to match on the looser gate before geometry is known
            looser = appearance <= opts.geometry_appearance_gate
            lone = np.array([[(r.id, i.id) in alone for i in ir] for r in rgb], bool).reshape(appearance.shape)
            entered = (_entered_together(rgb, ir, opts.entry_gate_s, present)
                       if opts.entry_gate_s > 0 and not unaccounted else np.zeros_like(lone))
            lone, entered = lone & looser, entered & looser
            allowed |= lone | entered
            voucher = _vouchers(allowed, ("alone", lone), ("entered", entered))
            return Scores(cost, allowed, appearance, None, _refuted(opts, appearance), voucher)
        return Scores(cost, allowed, appearance, None, voucher=_vouchers(allowed))

    heights = np.array([_height(tr) for tr in ir])
    feet_rgb = np.stack([foot(tr) for tr in rgb])
    mapped = calibration.rgb_to_ir(feet_rgb)
    feet_ir = np.stack([foot(tr) for tr in ir])
    geometry = np.linalg.norm(mapped[:, None] - feet_ir[None], axis=2) / heights[None]
    geometry = np.where(np.isfinite(geometry), geometry, np.inf)  # behind the horizon: nowhere near
    cost += opts.weight_geometry * np.minimum(geometry / opts.geometry_gate, 1.0)
    if opts.use_time and history is not None:
        cost += opts.weight_time * _velocity_disagreement(rgb, ir, heights, calibration, history, opts)
    near = (geometry <= opts.geometry_gate) & (appearance <= opts.geometry_appearance_gate)
    # far from the people a self-fitted map was fitted on, it is a guess: there geometry cannot vouch for a pair,
    # and appearance decides alone
    sigma = calibration.uncertainty_px(feet_rgb)[:, None]
    trusted = sigma <= opts.geometry_trust * heights[None]
    allowed = np.where(trusted, near, appearance <= opts.appearance_gate)
    # a guess still knows two people five box heights apart are not one (more than its uncertainty can explain)
    beyond = (geometry - opts.geometry_gate) * heights[None] > opts.refute_sigmas * sigma
    far = (geometry > opts.geometry_gate) & (trusted | beyond)
    return Scores(cost, allowed, appearance, geometry, _refuted(opts, appearance, far),
                  _vouchers(allowed, ("geometry", near & trusted)))


def _vouchers(allowed: np.ndarray, *cues: tuple[str, np.ndarray]) -> np.ndarray:
    """(N, M) str: per allowed pair the first of `cues` (name, mask) that holds for it, else "appearance" (its
    gate alone let the pair in); "" for pairs outside every gate."""
    out = np.where(allowed, "appearance", "").astype(object)
    for name, mask in reversed(cues):  # the first cue named wins: written last
        out[allowed & mask] = name
    return out


def _refuted(opts: FusionOptions, appearance: np.ndarray, far: np.ndarray | None = None) -> np.ndarray | None:
    """With geometry, a held match ends only on evidence against it: trusted geometry that places the two apart,
    or appearance beyond even the looser gate. Lacking a cue (no calibration yet, a fit dropped, a foot where the
    map is a guess) is not evidence: on SynthVI's separate rig most matches that ended by disagreeing were right."""
    if not opts.use_geometry:
        return None
    out = appearance > opts.geometry_appearance_gate
    return out if far is None else out | far


def _entered_together(rgb: list[Track], ir: list[Track], gate_s: float,
                      present: tuple[list[Track], list[Track]] = ([], [])) -> np.ndarray:
    """(N, M) bool: the two tracks came into view within gate_s of each other and no one else came into either view
    within four times that. Someone walking into a place both cameras watch shows up in both at once; this is the
    time cue strong enough to match on before geometry is known, as long as it is unambiguous: a tracker confirms a
    person a few frames early or late in each camera, and two separately mounted cameras see a person step in up to
    a second or two apart, so people entering within 2 s of each other cannot be told apart (on SynthVI's separate
    rig, rivals 1.6 s apart were matched the wrong way round with three times the gate). Rivals are looked for
    among the `present` tracks too: a rival hidden for a moment is still there (on the separate rig, a person seen
    by the RGB camera only was matched to one who came in with them while the right partner was occluded)."""
    everyone_r = rgb + [tr for tr in present[0] if tr not in rgb]
    everyone_i = ir + [tr for tr in present[1] if tr not in ir]
    entered_r = np.array([tr.entered for tr in everyone_r])
    entered_i = np.array([tr.entered for tr in everyone_i])
    apart = np.abs(np.array([tr.first_t for tr in everyone_r])[:, None]
                   - np.array([tr.first_t for tr in everyone_i])[None])
    both = entered_r[:, None] & entered_i[None]
    rivals = both & (apart <= 4 * gate_s)
    unique = both & (apart <= gate_s) & (rivals.sum(1, keepdims=True) == 1) & (rivals.sum(0, keepdims=True) == 1)
    return unique[:len(rgb), :len(ir)]


def _velocity_disagreement(rgb: list[Track], ir: list[Track], heights: np.ndarray, calibration: Calibration,
                           history: FootHistory, opts: FusionOptions) -> np.ndarray:
    """How differently the pair moves on the ground (RGB motion mapped into the IR image), 0 (same) .. 1."""
    out = np.zeros((len(rgb), len(ir)))
    v_ir = []
    for track in ir:
        s = history.span(track)
        v_ir.append(None if s is None else (s[1] - s[0]) / s[2])
    for r, track in enumerate(rgb):
        s = history.span(track)
        if s is None:
            continue
        start, end = calibration.rgb_to_ir(np.stack([s[0], s[1]]))
        v_r = (end - start) / s[2]
        for i, v in enumerate(v_ir):
            if v is not None and np.isfinite(v_r).all():
                out[r, i] = min(float(np.linalg.norm(v_r - v)) / heights[i] / opts.velocity_scale, 1.0)
    return out
