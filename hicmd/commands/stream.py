"""`hicmd stream`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from hicmd.choices import Backend, Cues, Device, Precision
from hicmd.commands._options import BackendOption, DeviceOption, PrecisionOption, ThreadsOption, model_option
from hicmd.errors import UserError

NAME = "stream"
EXAMPLES = ("hicmd stream --rgb cam0 --ir v4l2:///dev/video2 -m model/ --save out.mp4 --events events.jsonl",
            "hicmd stream --rgb rgb.mp4 --ir ir.mp4 -m model/ --calibration calibration.json --backend onnxruntime")


def command(
    rgb: Optional[str] = typer.Option(None, "--rgb", help="RGB source: cam0, v4l2:///dev/videoN, csi://N, rtsp://, "
                                      "udp://, http://, gst:<pipeline>, a video file or an image folder. Leave it out "
                                      "at night: IR only, people named from --gallery."),
    ir: str = typer.Option(..., "--ir", help="IR source (same forms); 16-bit Y16 frames are windowed by --ir-range."),
    model: Annotated[Path, model_option()] = ...,  # required; after options that have defaults
    backend: BackendOption = Backend.auto,
    url: Optional[str] = typer.Option(None, "--url", help="Triton server for --backend triton: grpc://host:8001."),
    device: DeviceOption = Device.auto,
    precision: PrecisionOption = Precision.auto,
    detector: Optional[str] = typer.Option(None, help="'hog' (default) or a YOLO-style person detector .onnx."),
    det_conf: Optional[float] = typer.Option(None, "--det-conf", help="Detector score threshold 0..1 (default: HOG "
                                             "0.3, ONNX 0.25)."),
    det_iou: Optional[float] = typer.Option(None, "--det-iou", help="Detector NMS IoU threshold (default: HOG 0.5, "
                                            "ONNX 0.45)."),
    detections_rgb: Optional[Path] = typer.Option(None, help="Precomputed RGB detections (MOTChallenge text)."),
    detections_ir: Optional[Path] = typer.Option(None, help="Precomputed IR detections (MOTChallenge text)."),
    embed_every: int = typer.Option(8, help="Re-embed each track every N frames (and when it is new)."),
    match_threshold: Optional[float] = typer.Option(None, help="Largest cosine distance for an RGB<->IR match "
                                                    "on appearance alone (default: the gate export measured for "
                                                    "this model, else 0.5)."),
    confirm: int = typer.Option(3, help="Agreeing updates before a match is announced (hysteresis; one fewer where "
                                "geometry or a time cue vouches for the pair)."),
    split_distance: Optional[float] = typer.Option(None, help="Split a track when two crops in a row are this far "
                                                   "(cosine) from its embedding: its box went to someone else. "
                                                   "0: never. Default: the model's measured gate, else 0.5."),
    cues: Cues = typer.Option(Cues.geometry, "--cues", help="Cues for RGB<->IR association: appearance only, + time "
                              "(co-presence, entry time), or + ground-plane geometry (needs a calibration or "
                              "self-calibration)."),
    calibration: Optional[Path] = typer.Option(None, "--calibration", help="calibration.json from 'hicmd "
                                               "calibrate' (RGB->IR ground homography). Without it the stream "
                                               "calibrates itself from confident matches."),
    self_calibrate: bool = typer.Option(True, "--self-calibrate/--no-self-calibrate",
                                        help="Fit the ground homography online when no --calibration is given."),
    geometry_gate: float = typer.Option(0.5, help="Largest foot-point distance, in IR box heights, between an RGB "
                                        "person mapped into the IR image and an IR person they can match."),
    geometry_trust: float = typer.Option(0.2, help="Geometry decides a pair only where a self-fitted homography is "
                                         "this sure (1-sigma uncertainty, in IR box heights); elsewhere appearance "
                                         "decides alone."),
    weight_geometry: float = typer.Option(1.0, help="Weight of the geometry cue in the association cost."),
    weight_time: float = typer.Option(0.3, help="Weight of the time cue (entry time, velocity) in the cost."),
    gallery: Optional[Path] = typer.Option(None, help="Folder of enrolled people: DIR/<name>/*.png."),
    enroll: Optional[str] = typer.Option(None, help="Save crops of the only person in view as this name "
                                         "into --gallery."),
    ir_range: str = typer.Option("20:40", help="Fixed temperature window LOW:HIGH (deg C) for Y16 frames."),
    save: Optional[Path] = typer.Option(None, help="Write a side-by-side annotated video a browser plays: .mp4 or "
                                         ".webm (VP9; H.264 where OpenCV has no VP9)."),
    save_tracks: Optional[Path] = typer.Option(None, help="Write rgb.txt / ir.txt track boxes (MOTChallenge)."),
    events: Optional[Path] = typer.Option(None, help="JSON-lines events file (default: stdout). Opened once the "
                                          "sources are up; an existing file is appended to (see --overwrite)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Start the --events file afresh instead of "
                                   "appending to it."),
    verbose: bool = typer.Option(False, "--verbose", help="Let OpenCV/FFmpeg print their own warnings."),
    show: bool = typer.Option(False, help="Show a window (needs an OpenCV with a GUI)."),
    max_frames: Optional[int] = typer.Option(None, help="Stop after N processed steps."),
    stats_every: float = typer.Option(5.0, help="Seconds between stats events."),
    pair_tolerance_ms: Optional[float] = typer.Option(None, help="RGB/IR pairing tolerance (default: half an RGB "
                                                      "frame period)."),
    realtime: Optional[bool] = typer.Option(None, "--realtime/--no-realtime", help="Drop old frames and pace files "
                                            "in real time (default: only for cameras and streams)."),
    loop: bool = typer.Option(False, help="Replay file sources endlessly."),
    fps_rgb: Optional[float] = typer.Option(None, help="Frame rate of an RGB image folder (default 30) or a "
                                            "file whose header is wrong."),
    fps_ir: Optional[float] = typer.Option(None, help="Same for the IR source."),
    threads: ThreadsOption = None,
    mirror: Optional[bool] = typer.Option(None, "--mirror/--no-mirror", help="Embed each crop and its mirror image "
                                          "too (default: as the model folder says, the way its gates were "
                                          "measured; --no-mirror halves the embedder's work)."),
    mqtt: Optional[str] = typer.Option(None, "--mqtt", help="Also publish the events to mqtt://[user:pw@]host:1883/"
                                       "topic (needs hicmd\\[mqtt]); a dead broker never stalls the stream."),
) -> None:
    """Watch an RGB and an IR camera, track people and say which IR person is which RGB person."""
    import contextlib
    import json
    import sys

    from rich.console import Console
    from rich.markup import escape

    from hicmd.runtime.detect import check_thresholds
    from hicmd.runtime.gates import describe_gates, resolve_gates
    from hicmd.runtime.sources import parse_ir_range, parse_source, quiet_video_logs, redact
    from hicmd.runtime.stream import StreamOptions, run_stream

    console = Console(stderr=True)
    quiet_video_logs(verbose)
    opts = StreamOptions(
        rgb=rgb, ir=ir, detector=detector, det_conf=det_conf, det_iou=det_iou,
        detections_rgb=str(detections_rgb) if detections_rgb else None,
        detections_ir=str(detections_ir) if detections_ir else None,
        embed_every=embed_every, match_threshold=match_threshold, confirm=confirm, split_distance=split_distance,
        cues=cues.value, calibration=str(calibration) if calibration else None, self_calibrate=self_calibrate,
        geometry_gate=geometry_gate, geometry_trust=geometry_trust, weight_geometry=weight_geometry,
        weight_time=weight_time,
        gallery=str(gallery) if gallery else None, enroll=enroll, ir_range=parse_ir_range(ir_range),
        save=str(save) if save else None, save_tracks=str(save_tracks) if save_tracks else None,
        events=str(events) if events else None, overwrite_events=overwrite, show=show, max_frames=max_frames,
        stats_every=stats_every,
        pair_tolerance_ms=pair_tolerance_ms, realtime=realtime, loop=loop, fps_rgb=fps_rgb, fps_ir=fps_ir,
    )
    parse_source(ir)  # a typo in a source fails before the model loads
    if rgb is not None:
        parse_source(rgb)
    elif not gallery:
        raise UserError("without --rgb (IR only) the stream can only name people from a gallery: give "
                        "--gallery DIR (enrol them with --rgb ... --gallery DIR --enroll NAME by day)")
    check_thresholds(det_conf, det_iou)
    for output in (save, events):  # output files may go into folders that do not exist yet
        if output is not None:
            output.parent.mkdir(parents=True, exist_ok=True)
    if enroll and not gallery:
        raise UserError("--enroll NAME needs --gallery DIR to save the crops into")
    embedder = _open_embedder(model, backend.value, device.value, precision.value, threads, url, mirror)
    publisher = _open_mqtt(mqtt) if mqtt else None
    gates = describe_gates(resolve_gates(opts, embedder))
    console.print(f"[bold]hicmd stream[/] {escape(redact(rgb)) if rgb else '(no RGB)'} + {escape(redact(ir))}\n"
                  f"{escape(embedder.describe())}\n{gates}; cues: {cues.value}", highlight=False)
    if publisher is not None:
        console.print(escape(publisher.describe()), highlight=False)
    # a terminal gets a live status line from the stats events; elsewhere the events themselves are the progress
    status = console.status("waiting for the first frames") if console.is_terminal else contextlib.nullcontext()

    def on_event(event: dict) -> None:
        if publisher is not None:
            publisher.publish(event)
        if event["event"] == "stats" and console.is_terminal:
            status.update(_status_line(event))  # type: ignore[union-attr]

    try:
        with status:
            summary = run_stream(opts, embedder, on_event=on_event)
    finally:
        if publisher is not None:
            publisher.close()
            console.print(f"MQTT: {publisher.published} events published ({publisher.acknowledged} acknowledged by the "
                          f"broker), {publisher.dropped} dropped")
    stopped_by = summary.extra.get("signal", "interrupted")
    console.print((f"[yellow]{stopped_by}[/] " if summary.interrupted else "") +
                  f"{summary.steps} steps in {summary.duration_s:.1f} s, tracks {summary.tracks}, "
                  f"matches {summary.matches} (lost {summary.matches_lost})")
    print(json.dumps({"summary": summary.to_dict()}), file=sys.stderr)


def _status_line(stats: dict) -> str:
    """One line from a stats event: frame rates, live tracks, matches and the embedder's latency."""
    cams = ", ".join(f"{cam} {c['processed_fps']:.1f}/{c['capture_fps']:.1f} fps"
                     for cam, c in stats["cameras"].items())
    embed = stats["stages"].get("embed")
    latency = f", embed p50 {embed['p50']:.1f} ms" if embed else ""
    tracks = "+".join(str(n) for n in stats["live_tracks"].values())
    return f"{cams} (processed/captured), tracks {tracks}, matches {stats['matches']}{latency}"


def _open_mqtt(url: str):  # noqa: ANN202
    from hicmd.runtime.mqtt import MqttPublisher

    return MqttPublisher(url)


def _open_embedder(model: Path, backend: str, device: str, precision: str, threads: int | None,  # noqa: ANN202
                   url: str | None = None, mirror: bool | None = None):
    from hicmd.runtime.embedder import Embedder

    return Embedder(model, backend=backend, device=device, precision=precision, threads=threads, url=url,
                    mirror=mirror)
