"""A real network camera: ffmpeg streams MPEG-TS over UDP on 127.0.0.1, is killed mid-stream and restarted."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from hicmd.runtime.stream import StreamOptions, run_stream

from testkit.stream import ColourDetector, FakeEmbedder, Walker, make_clip

FFMPEG = shutil.which("ffmpeg") or "/usr/bin/ffmpeg"
pytestmark = pytest.mark.skipif(not Path(FFMPEG).exists(), reason="needs ffmpeg")


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stream(clip: Path, port: int, gop: int, timeout: float = 20.0) -> subprocess.Popen:
    """Loop a clip in real time as MPEG-TS (MPEG-2 video) to 127.0.0.1 only; returns once frames are going out.

    A keyframe (with the sequence header) every 0.4-0.5 s, as low-latency senders do: a receiver that joins
    mid-stream must see one within its 1 s probe to learn the frame size. Waiting for ffmpeg's first progress line
    with a frame: the stream gives a network source 2.5 s to send something before it says "no data", and ffmpeg
    started beside a busy test worker on 2 cores has taken longer than that to get going.
    """
    proc = subprocess.Popen([FFMPEG, "-hide_banner", "-loglevel", "error", "-progress", "pipe:1", "-stats_period",
                             "0.1", "-re", "-stream_loop", "-1", "-i", str(clip), "-c:v", "mpeg2video", "-g", str(gop),
                             "-q:v", "4", "-f", "mpegts", f"udp://127.0.0.1:{port}?pkt_size=1316"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    sending = threading.Event()

    def drain() -> None:  # reads every progress line, so ffmpeg never blocks on a full pipe
        for line in proc.stdout:
            if line.startswith(b"frame=") and line[6:].strip().isdigit() and int(line[6:]) > 0:
                sending.set()

    threading.Thread(target=drain, daemon=True).start()
    if not sending.wait(timeout):
        proc.kill()
        raise AssertionError(f"ffmpeg sent no frame to port {port} within {timeout} s")
    return proc


def _wait(predicate, timeout: float, what: str) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return time.monotonic()
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_udp_camera_drops_and_recovers_keeping_ids(tmp_path):
    # people standing still, so the restarted stream shows them where they were
    people = [Walker(1, 0, 60, 0, 0, 99), Walker(2, 1, 160, 0, 0, 99), Walker(3, 2, 250, 0, 0, 99)]
    clip = make_clip(tmp_path / "clip", seconds=3.0, people=people)
    ports = {"rgb": _free_udp_port(), "ir": _free_udp_port()}
    gops = {"rgb": 5, "ir": 2}  # 10 fps and 5 fps clips
    procs: dict[str, subprocess.Popen] = {}
    try:
        for cam, port in ports.items():
            procs[cam] = _stream(clip / f"{cam}.mp4", port, gops[cam])
    except BaseException:  # the one already sending loops forever
        for proc in procs.values():
            proc.kill()
        raise
    events: list[tuple[float, dict]] = []
    lock = threading.Lock()

    def listen(event: dict) -> None:
        with lock:
            events.append((time.monotonic(), event))

    def seen(kind: str, camera: str | None = None) -> list[tuple[float, dict]]:
        with lock:
            return [(t, e) for t, e in events if e["event"] == kind and camera in (None, e.get("camera"))]

    stop, result = threading.Event(), {}
    opts = StreamOptions(rgb=f"udp://127.0.0.1:{ports['rgb']}", ir=f"udp://127.0.0.1:{ports['ir']}",
                         events=str(tmp_path / "events.jsonl"), embed_every=4, confirm=2, stats_every=1.0)

    def run() -> None:
        try:
            result["summary"] = run_stream(opts, FakeEmbedder(), stop=stop, on_event=listen,
                                           detectors={"rgb": ColourDetector(), "ir": ColourDetector()})
        except BaseException as exc:  # surfaced by the assertions below
            result["error"] = exc

    worker = threading.Thread(target=run, daemon=True)
    try:
        worker.start()
        _wait(lambda: len(seen("match")) >= 3 or "error" in result, 25, "three matches")
        assert "error" not in result, result.get("error")
        gids_before = sorted(e["gid"] for _, e in seen("match"))

        t_kill = time.monotonic()
        procs["ir"].kill()  # the IR camera goes away mid-stream
        procs["ir"].wait(timeout=5)
        _wait(lambda: seen("source_down", "ir"), 10, "source_down")
        time.sleep(0.5)
        procs["ir"] = _stream(clip / "ir.mp4", ports["ir"], gops["ir"])
        restarted = time.monotonic()  # frames are going out again
        t_up = _wait(lambda: seen("source_up", "ir"), 10, "source_up")
        # the listening reader resumes with the first keyframe (within 0.4 s of sending), not after a reopen (5 s
        # after source_down)
        assert t_up - restarted < 3.0, f"recovered after {t_up - restarted:.2f} s"
        # the reported outage is the real one, from the last frame received (frames still buffered in the socket
        # can arrive a little after the kill), not from the source_down event, which comes 1.5 s after that frame
        down_s = seen("source_up", "ir")[0][1]["down_s"]
        t_down = seen("source_down", "ir")[0][0]
        assert t_up - t_down + 1.0 <= down_s <= t_up - t_kill + 0.6, (down_s, t_up - t_down, t_up - t_kill)
        ir_stats_at_up = len(seen("stats"))
        _wait(lambda: len(seen("stats")) >= ir_stats_at_up + 2, 10, "two more stats lines")
    finally:
        stopping = time.monotonic()
        stop.set()
        worker.join(timeout=20)
        for proc in procs.values():
            proc.kill()
            proc.wait(timeout=5)
    assert not worker.is_alive() and "error" not in result, result.get("error")
    summary = result["summary"]
    assert summary.frames["ir"]["reconnects"] >= 1 and summary.frames["rgb"]["reconnects"] == 0
    # the people never left: no track ended and no match was lost before the run was stopped, ids unchanged
    assert not [e for t, e in seen("track_end") + seen("match_lost") if t < stopping]
    assert sorted(e["gid"] for _, e in seen("match")) == gids_before
    assert len(seen("track_new", "ir")) == 3
    # and IR frames kept flowing after the reconnect
    processed = [e["cameras"]["ir"]["processed"] for _, e in seen("stats")]
    assert processed[-1] > processed[ir_stats_at_up - 1]
