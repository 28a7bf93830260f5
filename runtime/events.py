"""JSON-lines events: one object per line on stdout or in a file. Torch-free.

Every event has "event" (its type), "time" (Unix seconds, when it was written) and the fields below. Stream time
"t" is seconds on the pipeline clock: monotonic for live sources, media time for files played in order.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import IO, Any, Callable

__all__ = ["SCHEMA", "SCHEMA_VERSION", "JSON_SCHEMA", "EventLog", "validate_event"]

SCHEMA_VERSION = 1  # every event carries it as "schema"; events.schema.json (shipped) is the full contract
JSON_SCHEMA = Path(__file__).with_name("events.schema.json")

SCHEMA: dict[str, dict[str, type | tuple[type, ...]]] = {
    "track_new": {"t": float, "camera": str, "track": int, "gid": int, "box": list, "frame": int},
    "track_end": {"t": float, "camera": str, "track": int, "gid": int, "hits": int, "duration_s": float,
                  "last_seen": float},
    "match": {"t": float, "gid": int, "rgb_track": int, "ir_track": int, "distance": float,
              "name": (str, type(None)), "rgb_frame": int, "ir_frame": int},
    "match_lost": {"t": float, "gid": int, "rgb_track": int, "ir_track": int, "reason": str, "duration_s": float,
                   "rgb_frame": int, "ir_frame": int},
    "stats": {"cameras": dict, "stages": dict, "live_tracks": dict, "matches": int},
    "source_down": {"camera": str, "source": str, "reason": str},
    "source_up": {"camera": str, "source": str, "down_s": float},
    # status: fitted | refitted | dropped | unfitted; source: self | file
    "calibration": {"t": float, "status": str, "source": str},
    "named": {"t": float, "camera": str, "track": int, "gid": int, "name": (str, type(None)),
              "distance": (float, type(None)), "frame": int},
}


def validate_event(event: dict[str, Any]) -> None:
    """Raise ValueError when an event lacks a field of its type's schema or has the wrong JSON type; where
    jsonschema is installed (hicmd[dev]), also when it breaks the shipped events.schema.json."""
    kind = event.get("event")
    if kind not in SCHEMA:
        raise ValueError(f"unknown event type {kind!r}")
    for key, typ in {"time": float, **SCHEMA[kind]}.items():
        if key not in event:
            raise ValueError(f"{kind} event lacks {key!r}: {event}")
        value = event[key]
        ok_types = typ if isinstance(typ, tuple) else (typ,)
        if float in ok_types and isinstance(value, int) and not isinstance(value, bool):
            continue  # JSON does not keep 1.0 apart from 1
        if not isinstance(value, ok_types):
            raise ValueError(f"{kind}.{key} should be {typ}, got {type(value).__name__}")
    validator = _json_validator()
    if validator is not None:
        error = next(iter(validator.iter_errors(event)), None)
        if error is not None:
            raise ValueError(f"{kind} event breaks {JSON_SCHEMA.name} at {list(error.absolute_path)}: {error.message}")


@functools.lru_cache(maxsize=1)
def _json_validator() -> Any:
    try:
        import jsonschema
    except ImportError:  # the edge runtime does not validate its own events
        return None
    return jsonschema.Draft202012Validator(json.loads(JSON_SCHEMA.read_text()))


def _open_log(path: Path, mode: str) -> IO[str]:
    """Open `path` to append events after a whole line: a run killed mid-line (or a full disk) leaves its last
    line cut, and the next run's first event must not be glued onto it (readers skip the cut line alone)."""
    cut = False
    if mode == "a" and path.is_file() and path.stat().st_size:
        try:
            with path.open("rb") as fh:
                fh.seek(-1, os.SEEK_END)
                cut = fh.read(1) != b"\n"
        except OSError:  # a file we may append to but not read: append as before
            pass
    out = open(path, mode)  # noqa: SIM115 - closed in EventLog.close()
    if cut:
        out.write("\n")
    return out


class EventLog:
    """Thread-safe JSON-lines writer (capture threads report source_down / source_up) that also counts events.

    A file target is opened on the first event, not before: a run that fails to start (a source that cannot be
    opened, a bad model) leaves an existing events file untouched. It is appended to, as a log is (a restarted
    service continues its file; every event carries its time), unless `overwrite` starts it afresh.
    """

    def __init__(self, target: str | Path | IO[str] | None = None,
                 listener: Callable[[dict[str, Any]], None] | None = None, overwrite: bool = False) -> None:
        self._path = Path(target) if isinstance(target, (str, Path)) else None
        self._mode = "w" if overwrite else "a"
        self._out: IO[str] | None = None if self._path is not None else (target or sys.stdout)
        self._closed = False
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.listener = listener

    def emit(self, event: dict[str, Any]) -> None:
        event = {"event": event["event"], "time": round(time.time(), 3), "schema": SCHEMA_VERSION,
                 **{k: v for k, v in event.items() if k != "event"}}
        line = json.dumps(event, separators=(",", ":"))
        with self._lock:
            self.counts[event["event"]] += 1
            if self._out is None and self._path is not None and not self._closed:
                self._out = _open_log(self._path, self._mode)
            if self._out is not None:
                try:
                    self._out.write(line + "\n")
                    self._out.flush()
                except OSError as exc:  # a full disk says which file it could not write
                    raise OSError(exc.errno, f"cannot write the events ({exc.strerror})",
                                  str(self._path or getattr(self._out, "name", "events"))) from None
            if self.listener is not None:
                self.listener(event)

    def close(self) -> None:
        with self._lock:
            if self._path is not None and self._out is not None:
                self._out.close()
            self._out, self._closed = None, True
