"""The two-camera pipeline behind `hicmd stream`: capture -> pair -> detect -> track -> embed -> associate -> events.

    summary = run_stream(StreamOptions(rgb="rgb.mp4", ir="ir.mp4", detections_rgb=..., detections_ir=...), embedder)

`embedder` is a CropEmbedder (hicmd.runtime.embedder: `embed`, `embed_pair`; the real one is its Embedder); detectors
and trackers per camera can be passed in (Detector, Tracker protocols), else they are built from the options. Ctrl-C
ends the run cleanly and still returns the Summary. Torch-free.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from hicmd.modality import MODALITIES

from .annotate import CODECS, VideoSink, draw_tracks, side_by_side
from .capture import CaptureThread, Frame
from .detect import Detector, make_detector
from .crossview import CrossView
from .events import EventLog
from .fusion import FusionOptions
from .gallery import Gallery, save_crop
from .gates import resolve_gates
from .geometry import Calibration
from .options import StreamError, StreamOptions, Summary
from .pairing import Pairer
from .shutdown import stop_on_signals
from .sources import gui_available, open_source, parse_source
from .stats import RateMeter, StageTimes
from .embedder import CropEmbedder
from .track import Track, Tracker, camera_tracker, crowded, whole_in_frame
from .trackfiles import TrackFiles

__all__ = ["StreamError", "StreamOptions", "Summary", "run_stream"]

CAMERAS = MODALITIES  # one camera per modality
SWAP_WINDOW_S = 2.0  # an IoU tracker swaps people where boxes overlap: splits come sooner after an overlap this recent


def run_stream(opts: StreamOptions, embedder: CropEmbedder, *, detectors: dict[str, Detector] | None = None,
               trackers: dict[str, Tracker] | None = None, stop: threading.Event | None = None,
               on_event: Callable[[dict[str, Any]], None] | None = None) -> Summary:
    """Run the pipeline until a file source ends, `max_frames` steps, `stop` is set, or Ctrl-C."""
    pipeline = Pipeline(opts, embedder, detectors, on_event, trackers)
    return pipeline.run(stop or threading.Event())


class Pipeline:
    def __init__(self, opts: StreamOptions, embedder: CropEmbedder, detectors: dict[str, Detector] | None,
                 on_event: Callable[[dict[str, Any]], None] | None,
                 trackers: dict[str, Tracker] | None = None) -> None:
        if opts.show and not gui_available():
            raise StreamError("--show needs an OpenCV with a GUI; opencv-python-headless has none "
                              "(pip install opencv-python, or use --save out.mp4)")
        if opts.save and Path(opts.save).suffix.lower() not in CODECS:
            raise StreamError(f"--save {opts.save}: use a .mp4 or .webm file (VP9 or H.264, which browsers play)")
        self.opts, self.embedder = opts, embedder
        # the night scenario: no RGB camera (or none worth watching in the dark), people named from a gallery
        self.cams = CAMERAS if opts.rgb else ("ir",)
        if opts.calibration and not opts.rgb:
            raise StreamError("--calibration maps RGB to IR: it needs --rgb as well as --ir")
        specs = {cam: parse_source(getattr(opts, cam)) for cam in self.cams}
        live = any(s.live for s in specs.values())
        if opts.realtime is False and live:
            raise StreamError("--no-realtime needs file or folder sources; cameras and streams always drop "
                              "old frames")
        self.realtime = live if opts.realtime is None else opts.realtime
        self.files = {cam for cam, s in specs.items() if not s.live}
        given = detectors or {}
        dets_files = {"rgb": opts.detections_rgb, "ir": opts.detections_ir}
        self.detectors = {cam: given.get(cam) or make_detector(opts.detector, dets_files[cam], opts.det_conf,
                                                                     opts.det_iou) for cam in self.cams}
        self.times = StageTimes()
        self.log = EventLog(opts.events, listener=on_event, overwrite=opts.overwrite_events)
        self.captures: dict[str, CaptureThread] = {}
        try:
            for cam in self.cams:
                fps = {"rgb": opts.fps_rgb, "ir": opts.fps_ir}[cam]
                opener = (lambda spec=specs[cam], cam=cam, fps=fps:
                          open_source(spec, thermal=cam == "ir", folder_fps=fps or 30.0))
                self.captures[cam] = CaptureThread(cam, specs[cam], opener, realtime=self.realtime,
                                                   ir_range=opts.ir_range, on_event=self.log.emit, times=self.times,
                                                   loop=opts.loop, fps=fps)
        except Exception:
            self._close_captures()
            self.log.close()
            raise
        rgb_fps = self.captures[self.cams[0]].fps  # the clock of the video and of pairing
        tolerance = (opts.pair_tolerance_ms / 1000.0) if opts.pair_tolerance_ms else 0.5 / rgb_fps
        self.pairer = Pairer(tolerance)
        self.trackers: dict[str, Tracker] = {
            cam: (trackers or {}).get(cam)
            or camera_tracker(cam, self.captures[cam].fps, opts.min_hits, opts.max_lost_s)
            for cam in self.cams}
        self.gates = resolve_gates(opts, embedder)
        fusion = FusionOptions(cues=opts.cues, appearance_gate=self.gates["match"], geometry_gate=opts.geometry_gate,
                               geometry_trust=opts.geometry_trust, weight_geometry=opts.weight_geometry,
                               weight_time=opts.weight_time)
        calibration = Calibration.load(Path(opts.calibration)) if opts.calibration else None
        self.matcher = CrossView(fusion, opts.confirm, calibration, opts.self_calibrate)
        self.gallery = (Gallery(opts.gallery, embedder, self.gates["gallery"], enrolling=bool(opts.enroll))
                        if opts.gallery else None)
        self.enrolled = {cam: 0 for cam in CAMERAS}
        self.sink = VideoSink(opts.save, rgb_fps) if opts.save else None
        self.track_files = TrackFiles(opts.save_tracks, self.cams) if opts.save_tracks else None
        self.processed = {cam: 0 for cam in CAMERAS}
        self.track_counts = {cam: 0 for cam in CAMERAS}
        self.last_image: dict[str, np.ndarray | None] = {cam: None for cam in CAMERAS}
        self.last_index = {cam: 0 for cam in CAMERAS}  # frame number of each camera's newest frame
        self.steps = 0
        self.started = False

    # ------------------------------------------------------------------ main loop

    def run(self, stop: threading.Event) -> Summary:
        """Run until the sources end, `stop` is set, Ctrl-C, SIGTERM or SIGHUP; outputs are finished in each case."""
        start = time.monotonic()
        for capture in self.captures.values():
            capture.start()
        with stop_on_signals(stop) as caught:
            summary = self._loop(stop, start)
        summary.interrupted = summary.interrupted or caught.name is not None
        if caught.name:
            summary.extra["signal"] = caught.name
        return summary

    def _loop(self, stop: threading.Event, start: float) -> Summary:
        interrupted = False
        rates, next_stats = RateMeter(), start + self.opts.stats_every
        try:
            while not stop.is_set():
                ended = self._pull()
                now = None if not self.realtime else time.monotonic()
                for pair in self.pairer.pop(now, ended):
                    self._step(pair)
                    if self.opts.max_frames and self.steps >= self.opts.max_frames:
                        stop.set()
                        break
                if self._over(ended):
                    break
                if time.monotonic() >= next_stats:
                    self._stats(rates)
                    next_stats = time.monotonic() + self.opts.stats_every
        except KeyboardInterrupt:
            interrupted = True
        finally:
            self._close_captures()
            self._finish()
        summary = self._summary(time.monotonic() - start, interrupted)
        self.log.close()
        return summary

    def _over(self, ended: set[str]) -> bool:
        """A file that ran out ends the run, once the other camera has caught up with its last frame."""
        if set(self.cams) <= ended:
            return True
        for cam in ended & self.files:
            other = "ir" if cam == "rgb" else "rgb"
            if other not in self.cams:
                return True
            last, other_last = self.pairer.last_t[cam], self.pairer.last_t[other]
            if self.realtime or last is None or other_last is None or other_last > last + self.pairer.tolerance:
                return True
        return False

    def _pull(self) -> set[str]:
        """Move captured frames into the pairer; returns the cameras that ended and are drained."""
        for cam, capture in self.captures.items():
            if capture.error is not None:
                raise StreamError(f"{cam} capture failed: {capture.error}")
        if self.realtime:  # take whatever is newest; wait a little only when nothing came
            got = False
            for capture in self.captures.values():
                if (frame := capture.get(0.0)) is not None:
                    self.pairer.push(frame)
                    got = True
            if not got and (frame := self.captures[self.cams[0]].get(0.005)) is not None:
                self.pairer.push(frame)
        else:  # in order: read from the camera that is behind, so pairing sees both clocks advance
            waiting = [c for c in self.cams if not self.captures[c].exhausted]
            if waiting:
                cam = min(waiting, key=lambda c: (self.pairer.last_t[c] if self.pairer.last_t[c] is not None
                                                  else -1.0))
                if (frame := self.captures[cam].get(0.2)) is not None:
                    self.pairer.push(frame)
        # an absent camera counts as ended, so the other one's frames are processed alone
        return {cam for cam, capture in self.captures.items() if capture.exhausted} | (set(CAMERAS) - set(self.cams))

    # ------------------------------------------------------------------ one paired step

    def _step(self, pair: tuple[Frame | None, Frame | None]) -> None:
        self.steps += 1
        frames = {cam: f for cam, f in zip(CAMERAS, pair) if f is not None}
        if not self.started and all(f is not None for f in pair):  # both image sizes known: calibration can start
            self.matcher.start({cam: (f.image.shape[1], f.image.shape[0]) for cam, f in frames.items()})
            self.started = True
        t = min(f.t for f in frames.values())
        crops: dict[str, list[np.ndarray]] = {cam: [] for cam in CAMERAS}
        todo: dict[str, list[Track]] = {cam: [] for cam in CAMERAS}
        for cam, frame in frames.items():
            self.processed[cam] += 1
            self.last_image[cam], self.last_index[cam] = frame.image, frame.index
            with self.times.time("detect"):
                dets = self.detectors[cam].detect(frame.image, frame.index)
            size = (frame.image.shape[1], frame.image.shape[0])
            with self.times.time("track"):
                born, ended = self.trackers[cam].update(dets, frame.t, size)
                self.matcher.observe(self.trackers[cam].confirmed, frame.t)
            for track in born:
                self._start_track(cam, track, frame)
            for track in ended:
                self._end_track(track, frame.t)
            live = self.trackers[cam].confirmed
            for track in live:  # once a track has an embedding, only crops that show it alone and whole add to it
                clear = track.visible and not crowded(track, live)
                if track.visible and not clear:
                    track.crowded_t = frame.t
                if track.visible and track.look.due(track.age, self.opts.embed_every) and (
                        track.look.embedding is None or clear and whole_in_frame(track, size)):
                    crop = _crop(frame.image, track.box)
                    if crop is not None:
                        todo[cam].append(track)
                        crops[cam].append(crop)
            if self.track_files is not None:
                self.track_files.write(cam, frame.index, self.trackers[cam].confirmed)
        if todo["rgb"] or todo["ir"]:
            with self.times.time("embed"):
                embeddings = self._embed(crops["rgb"], crops["ir"])
            for cam in CAMERAS:
                for track, crop, emb in zip(todo[cam], crops[cam], embeddings[cam]):
                    track.look.last_age = track.age
                    verdict = track.look.judge(emb, self.gates["split"], t - track.crowded_t <= SWAP_WINDOW_S)
                    if verdict == "odd":
                        continue  # one crop unlike the track (a passer-by in front): kept out of its embedding
                    if verdict == "changed":
                        track = self._split(cam, track, frames[cam])
                    track.look.add(emb, self.opts.ema)
                    if self.gallery is not None and len(self.gallery):
                        self._name(track, frames[cam])
                self._enroll(cam, todo[cam], crops[cam])
            if len(self.cams) == 2:
                with self.times.time("match"):
                    for event in self.matcher.update(self.trackers["rgb"].confirmed, self.trackers["ir"].confirmed,
                                                     t):
                        self._emit_match(event)
        if len(self.cams) == 2:
            for event in self.matcher.tick(self.trackers["rgb"].confirmed, self.trackers["ir"].confirmed, t):
                self._emit_match(event)
        if self.sink is not None or self.opts.show:
            self._render()

    def _embed(self, rgb: list[np.ndarray], ir: list[np.ndarray]) -> dict[str, np.ndarray]:
        if rgb and ir:
            e_rgb, e_ir = self.embedder.embed_pair(rgb, ir)
        else:
            e_rgb = self.embedder.embed(rgb, "rgb") if rgb else np.zeros((0, 0), np.float32)
            e_ir = self.embedder.embed(ir, "ir") if ir else np.zeros((0, 0), np.float32)
        return {"rgb": np.asarray(e_rgb, np.float32), "ir": np.asarray(e_ir, np.float32)}

    def _start_track(self, cam: str, track: Track, frame: Frame) -> None:
        self.matcher.register(track)
        self.track_counts[cam] += 1
        self.log.emit({"event": "track_new", "t": round(frame.t, 4), "camera": cam, "track": track.id,
                       "gid": track.gid, "box": [round(float(v), 1) for v in track.box], "frame": frame.index})

    def _split(self, cam: str, track: Track, frame: Frame) -> Track:
        """End a track whose box now follows another person; a new track takes the box over."""
        new = self.trackers[cam].split(track)
        self._end_track(track, frame.t)
        self._start_track(cam, new, frame)
        new.look.last_age = new.age
        return new

    def _name(self, track: Track, frame: Frame) -> None:
        """Gallery naming; a `named` event when a track's name changes (the night scenario's only output)."""
        name, distance = self.gallery.identify(track.look.embedding)
        if name != track.name:
            self.log.emit({"event": "named", "t": round(frame.t, 4), "camera": track.camera, "track": track.id,
                           "gid": track.gid, "name": name, "distance": None if distance is None else
                           round(float(distance), 4), "frame": frame.index})
        track.name = name

    def _emit_match(self, event: dict[str, Any]) -> None:
        """match / match_lost events say on which frame of each camera they happened (to find it in a recording)."""
        self.log.emit({**event, "rgb_frame": self.last_index["rgb"], "ir_frame": self.last_index["ir"]})

    def _end_track(self, track: Track, t: float) -> None:
        for event in self.matcher.track_ended(track, t):
            self._emit_match(event)
        self.log.emit({"event": "track_end", "t": round(t, 4), "camera": track.camera, "track": track.id,
                       "gid": track.own_gid, "hits": track.hits, "duration_s": round(track.last_t - track.first_t, 3),
                       "last_seen": round(track.last_t, 4)})

    def _enroll(self, cam: str, tracks: list[Track], crops: list[np.ndarray]) -> None:
        """Enrolment saves crops only while exactly one person is in view, so the name cannot go to a stranger."""
        if not (self.opts.enroll and self.opts.gallery) or self.enrolled[cam] >= self.opts.enroll_max:
            return
        if len(tracks) == 1 and len([t for t in self.trackers[cam].confirmed if t.visible]) == 1:
            save_crop(self.opts.gallery, self.opts.enroll, crops[0], cam, f"{int(time.time() * 1000)}_{tracks[0].id}")
            self.enrolled[cam] += 1

    def _render(self) -> None:
        distances = {}
        for m in self.matcher.matches.values():
            distances[m.rgb.id, "rgb"] = distances[m.ir.id, "ir"] = m.distance
        panels = []
        height = self.last_image["rgb"].shape[0] if self.last_image["rgb"] is not None else 0
        for cam in self.cams:
            image = self.last_image[cam]
            if image is not None:
                d = {tid: v for (tid, c), v in distances.items() if c == cam}
                panels.append(draw_tracks(image, self.trackers[cam].confirmed, d, height))
        if not panels:
            return
        canvas = side_by_side(*panels) if len(panels) == 2 else panels[0]
        if self.sink is not None:
            self.sink.write(canvas)
        if self.opts.show:
            cv2.imshow("hicmd stream", canvas)
            if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                raise KeyboardInterrupt

    # ------------------------------------------------------------------ reporting and shutdown

    def _counters(self) -> dict[str, dict[str, int]]:
        return {cam: {"captured": c.grabbed, "processed": self.processed[cam], "dropped": c.dropped,
                      "corrupt": c.corrupt, "reconnects": c.reconnects} for cam, c in self.captures.items()}

    def _stats(self, rates: RateMeter) -> None:
        counters = self._counters()
        flat = {f"{cam}.{k}": v for cam, d in counters.items() for k, v in d.items()}
        per_s = rates.rates(flat)
        cameras = {cam: {"capture_fps": per_s[f"{cam}.captured"], "processed_fps": per_s[f"{cam}.processed"],
                         "dropped_fps": per_s[f"{cam}.dropped"], **d} for cam, d in counters.items()}
        self.log.emit({"event": "stats", "cameras": cameras, "stages": self.times.summary(),
                       "live_tracks": {cam: len(tr.confirmed) for cam, tr in self.trackers.items()},
                       "matches": len(self.matcher.matches)})

    def _close_captures(self) -> None:
        for capture in self.captures.values():
            capture.stop()
        for capture in self.captures.values():
            if capture.is_alive():
                capture.join(timeout=5.0)

    def _finish(self) -> None:
        """End every live track (so matches end too), close outputs."""
        t = max((c.last_t for c in self.captures.values()), default=0.0)
        for cam in self.cams:
            for track in self.trackers[cam].confirmed:
                self._end_track(track, t)
            self.trackers[cam].tracks = []
        if self.sink is not None:
            self.sink.close()
        if self.track_files is not None:
            self.track_files.close()
        if self.opts.show:
            cv2.destroyAllWindows()

    def _summary(self, duration: float, interrupted: bool) -> Summary:
        skews = list(self.pairer.skews)
        return Summary(duration_s=round(duration, 3), steps=self.steps, interrupted=interrupted,
                       frames=self._counters(), tracks=dict(self.track_counts), matches=self.matcher.total_matches,
                       matches_lost=self.matcher.total_lost, events=dict(self.log.counts),
                       stages=self.times.summary(),
                       pair_skew_ms_p50=round(float(np.median(skews)) * 1000, 3) if skews else None,
                       extra={"gates": self.gates, **self.matcher.summary()})


def _crop(image: np.ndarray, box: np.ndarray, min_size: int = 4) -> np.ndarray | None:
    h, w = image.shape[:2]
    x1, y1 = max(0, int(box[0])), max(0, int(box[1]))
    x2, y2 = min(w, int(round(box[2]))), min(h, int(round(box[3])))
    if x2 - x1 < min_size or y2 - y1 < min_size:
        return None
    return image[y1:y2, x1:x2]
