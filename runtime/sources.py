"""Camera and video sources: parse a source string, open it, read frames (thermal Y16 included).

Source strings (`hicmd stream --rgb/--ir`):

    cam0, 0                 V4L2 device index (live)
    v4l2:///dev/video2      V4L2 device path (live)
    csi://0                 Jetson CSI camera through nvarguscamerasrc (needs OpenCV with GStreamer; live)
    rtsp://, udp://, http://, https://, rtmp://, tcp://   network stream through FFmpeg (live)
    gst:<pipeline>          raw GStreamer pipeline ending in appsink (live)
    clip.mp4, file://clip.mp4                             any video file OpenCV can decode
    frames/                 folder of images read in sorted order; 16-bit PNGs stay 16-bit (thermal Y16)

Torch-free. Readers raise `EndOfStream` when a file or folder is exhausted and return None for a frame that could
not be read (a corrupt frame, or a network hiccup); the capture thread decides what that means.
"""

from __future__ import annotations

import ipaddress
import os
import re
import select
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import cv2
import numpy as np

from hicmd.errors import HicmdError

from .redact import redact

__all__ = [
    "SourceError",
    "EndOfStream",
    "SourceSpec",
    "parse_source",
    "open_source",
    "gstreamer_available",
    "gui_available",
    "parse_ir_range",
    "y16_to_u8",
    "fix_y16_shape",
    "FrameReader",
    "redact",
    "quiet_video_logs",
]

NETWORK_SCHEMES = ("rtsp", "rtsps", "udp", "tcp", "http", "https", "rtmp", "srt")
IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".pgm", ".ppm"}
KELVIN = 273.15
FFMPEG_OPTIONS = "analyzeduration;500000|probesize;65536|fpsprobesize;0"


def quiet_video_logs(verbose: bool = False) -> None:
    """Silence OpenCV's and FFmpeg's own warnings (3-6 lines around every failing source) unless asked for.

    hicmd reports a failing source in one line of its own; FFmpeg's lines can also echo the URL with its password.
    """
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "24" if verbose else "-8")  # AV_LOG_WARNING / AV_LOG_QUIET
    os.environ.setdefault("OPENCV_LOG_LEVEL", "WARNING" if verbose else "SILENT")
    try:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_WARNING if verbose
                                      else cv2.utils.logging.LOG_LEVEL_SILENT)
    except AttributeError:  # an OpenCV build without the logging utilities
        pass


class SourceError(HicmdError, ValueError):
    """A source string that names nothing usable, or a source that cannot be opened."""


class EndOfStream(Exception):
    """A file or folder source has no more frames."""


@dataclass(frozen=True)
class SourceSpec:
    """What a source string means. `live` sources drop frames and reconnect; files and folders end."""

    text: str
    kind: str  # device | v4l2 | csi | network | gst | file | folder
    target: str | int  # device index, path, url or pipeline

    @property
    def live(self) -> bool:
        return self.kind not in ("file", "folder")

    @property
    def shown(self) -> str:
        """The source as it may be shown anywhere: credentials redacted."""
        return redact(self.text)

    def __repr__(self) -> str:  # never let a traceback or a log line carry the password
        return f"SourceSpec({self.shown!r}, {self.kind!r})"


def parse_source(text: str) -> SourceSpec:
    """Classify a source string; a SourceError says which forms are accepted."""
    raw = text.strip()
    if m := re.fullmatch(r"(?:cam)?(\d+)", raw):
        return SourceSpec(raw, "device", int(m.group(1)))
    if raw.startswith("v4l2://"):
        return SourceSpec(raw, "v4l2", raw[len("v4l2://"):])
    if m := re.fullmatch(r"csi://(\d+)", raw):
        return SourceSpec(raw, "csi", int(m.group(1)))
    if raw.startswith("gst:"):
        return SourceSpec(raw, "gst", raw[len("gst:"):].strip())
    scheme = raw.split("://", 1)[0].lower() if "://" in raw else ""
    if scheme in NETWORK_SCHEMES:
        return SourceSpec(raw, "network", raw)
    if scheme == "file":
        raw = raw[len("file://"):]
    elif scheme:
        raise SourceError(f"unknown source {redact(text)!r}: scheme {scheme}:// is not supported "
                          f"(use cam0, v4l2:///dev/videoN, csi://N, {', '.join(NETWORK_SCHEMES[:4])}://..., "
                          f"gst:<pipeline>, a video file or an image folder)")
    path = Path(raw).expanduser()
    if path.is_dir():
        return SourceSpec(text, "folder", str(path))
    if path.is_file():
        return SourceSpec(text, "file", str(path))
    raise SourceError(f"unknown source {redact(text)!r}: no such file or folder, and not a camera or stream "
                      f"(use cam0, v4l2:///dev/videoN, csi://N, rtsp://..., udp://..., gst:<pipeline>, "
                      f"a video file or an image folder)")


def gstreamer_available() -> bool:
    """True when this OpenCV was built with GStreamer (JetPack's is; the pip wheels are not)."""
    return bool(re.search(r"GStreamer:\s+YES", cv2.getBuildInformation()))


def gui_available() -> bool:
    """True when cv2.imshow can open a window (opencv-python-headless has no GUI backend)."""
    match = re.search(r"GUI:\s+(\S+)", cv2.getBuildInformation())
    return bool(match) and match.group(1).upper() != "NONE"


def csi_pipeline(sensor: int, width: int = 1280, height: int = 720, fps: int = 30) -> str:
    """nvarguscamerasrc -> BGR appsink that keeps only the newest buffer."""
    return (f"nvarguscamerasrc sensor-id={sensor} ! video/x-raw(memory:NVMM),width={width},height={height},"
            f"framerate={fps}/1 ! nvvidconv ! video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=BGR ! "
            f"appsink drop=true max-buffers=1 sync=false")


# ---------------------------------------------------------------------------------------------- thermal Y16


def parse_ir_range(text: str) -> tuple[float, float]:
    """'20:40' -> (20.0, 40.0) degrees Celsius."""
    try:
        lo, hi = (float(v) for v in text.split(":"))
    except ValueError:
        raise SourceError(f"--ir-range {text!r} must be LOW:HIGH in degrees Celsius, e.g. 20:40") from None
    if not hi > lo:
        raise SourceError(f"--ir-range {text!r}: HIGH must be above LOW")
    return lo, hi


def y16_to_u8(frame: np.ndarray, ir_range: tuple[float, float] = (20.0, 40.0)) -> np.ndarray:
    """Map centi-Kelvin Y16 values to 8-bit with a FIXED temperature window.

    A fixed window keeps a person's grey level stable over time and across cameras; per-frame min-max would
    re-scale every frame (a hot cup entering the view would darken everybody).
    """
    lo = (ir_range[0] + KELVIN) * 100.0
    hi = (ir_range[1] + KELVIN) * 100.0
    scaled = (frame.astype(np.float32) - lo) * (255.0 / (hi - lo))
    return np.clip(scaled, 0, 255).astype(np.uint8)


def fix_y16_shape(frame: np.ndarray, width: int, height: int) -> np.ndarray | None:
    """Undo the flattened or byte-split frames some OpenCV/V4L2 versions return for Y16 (opencv#27166)."""
    if frame.ndim == 2 and frame.dtype == np.uint16 and frame.shape == (height, width):
        return frame
    if width <= 0 or height <= 0:
        return frame if frame.ndim == 2 else None
    flat = np.ascontiguousarray(frame).reshape(-1)
    if flat.dtype == np.uint8 and flat.size == width * height * 2:
        flat = flat.view("<u2")
    if flat.dtype == np.uint16 and flat.size == width * height:
        return flat.reshape(height, width)
    return None


# ---------------------------------------------------------------------------------------------- readers


def wait_for_udp(url: str, timeout: float) -> bool:
    """For a unicast udp:// listener, wait until a datagram arrives (True) or `timeout` passes (False).

    FFmpeg blocks in stream probing until its open timeout when it starts listening before the sender is back,
    and an interrupted probe leaves a stream it cannot decode; opening only once data flows avoids both, so a
    restarted sender is picked up about a second after it starts. Other URLs: True at once.
    """
    parts = urlsplit(url)
    if parts.scheme != "udp" or not parts.port:
        return True
    try:
        if ipaddress.ip_address(parts.hostname or "0.0.0.0").is_multicast:
            return True
    except ValueError:
        pass  # a host name: a unicast listener
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("", parts.port))
        except OSError:
            return True  # someone else holds the port; let FFmpeg report what is wrong
        readable, _, _ = select.select([sock], [], [], timeout)
        return bool(readable)



class FrameReader:
    """Base reader: `read()` -> image (or None for a bad frame), raises EndOfStream at the end of a file."""

    fps: float = 0.0

    def read(self) -> np.ndarray | None:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        pass


class CvReader(FrameReader):
    """cv2.VideoCapture over a device, a network stream, a GStreamer pipeline or a video file."""

    def __init__(self, spec: SourceSpec, thermal: bool = False, open_ms: int = 2500, read_ms: int = 1000) -> None:
        self.spec, self.thermal = spec, thermal
        if spec.kind in ("csi", "gst") and not gstreamer_available():
            raise SourceError(f"{spec.shown}: this OpenCV ({cv2.__version__}) was built without GStreamer; "
                              f"install JetPack's OpenCV (python3-opencv) or use a v4l2/rtsp/file source")
        if spec.kind == "csi":
            self.cap = cv2.VideoCapture(csi_pipeline(int(spec.target)), cv2.CAP_GSTREAMER)
        elif spec.kind == "gst":
            self.cap = cv2.VideoCapture(str(spec.target), cv2.CAP_GSTREAMER)
        elif spec.kind == "network":
            if not wait_for_udp(str(spec.target), open_ms / 1000.0):
                raise SourceError(f"{spec.shown}: no data (is the sender running?)")
            # short stream probing (0.5 s, no frame-rate probing) so opening and re-opening after an outage take
            # well under a second, not five; the sender needs a keyframe at least every 0.5 s;
            # a user's own OPENCV_FFMPEG_CAPTURE_OPTIONS (e.g. rtsp_transport;tcp) wins
            os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", FFMPEG_OPTIONS)
            # bounded open/read so a dead stream turns into a failed read (and a reconnect), not a hang
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, open_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, read_ms]
            self.cap = cv2.VideoCapture(str(spec.target), cv2.CAP_FFMPEG, params)
        elif spec.kind in ("device", "v4l2"):
            self.cap = cv2.VideoCapture(spec.target, cv2.CAP_V4L2)
            if thermal:  # Lepton/Boson over UVC: ask for raw 16-bit and stop OpenCV converting it to BGR
                self.cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*"Y16 "))
                self.cap.set(cv2.CAP_PROP_CONVERT_RGB, 0)
            self.cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        else:
            self.cap = cv2.VideoCapture(str(spec.target))
        if not self.cap.isOpened():
            self.cap.release()
            raise SourceError(f"cannot open {spec.shown!r} ({spec.kind}); check the path/URL/device and that "
                              f"OpenCV can decode it")
        self.fps = float(self.cap.get(cv2.CAP_PROP_FPS) or 0.0)
        if not 0.5 < self.fps < 1000:
            self.fps = 0.0
        self.width = int(self.cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(self.cap.get(cv2.CAP_PROP_FRAME_HEIGHT))

    def read(self) -> np.ndarray | None:
        if not self.cap.grab():
            if self.spec.kind == "file":  # files only fail to grab at their end
                raise EndOfStream(self.spec.shown)
            return None
        ok, frame = self.cap.retrieve()
        if not ok or frame is None:
            return None
        if self.thermal and frame.dtype != np.uint8:
            return fix_y16_shape(frame, self.width, self.height)
        return frame

    def close(self) -> None:
        self.cap.release()


class FolderReader(FrameReader):
    """Images of a folder in sorted order, read unchanged (16-bit PNGs stay uint16)."""

    def __init__(self, spec: SourceSpec, fps: float = 30.0) -> None:
        self.spec = spec
        self.files = sorted(p for p in Path(str(spec.target)).iterdir() if p.suffix.lower() in IMAGE_EXTS)
        if not self.files:
            raise SourceError(f"{spec.shown}: folder holds no images ({', '.join(sorted(IMAGE_EXTS))})")
        self.fps = fps
        self.position = 0

    def read(self) -> np.ndarray | None:
        if self.position >= len(self.files):
            raise EndOfStream(self.spec.shown)
        path = self.files[self.position]
        self.position += 1
        return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)  # None when the file is corrupt


def open_source(spec: SourceSpec, thermal: bool = False, folder_fps: float = 30.0) -> FrameReader:
    """Open a parsed source; SourceError when it cannot be opened."""
    if spec.kind == "folder":
        return FolderReader(spec, fps=folder_fps)
    return CvReader(spec, thermal=thermal)
