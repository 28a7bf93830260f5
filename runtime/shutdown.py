"""Stop a run cleanly on SIGTERM and SIGHUP, as on Ctrl-C. Torch-free.

systemd and docker stop a service with SIGTERM (then SIGKILL after a grace period), and a closed terminal sends
SIGHUP. Python's default for both is to die at once: the annotated video loses its index (unplayable), the track
files their buffered rows, and no track_end events or summary are written. Here a signal only asks the loop to stop;
the pipeline then finishes its outputs exactly as after Ctrl-C.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

__all__ = ["Caught", "stop_on_signals"]

SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


@dataclass
class Caught:
    name: str | None = None  # the signal that asked the run to stop, if any


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[Caught]:
    """Within the block, SIGTERM / SIGHUP set `stop` instead of killing the process (main thread only: Python
    delivers signals there, and a library caller on another thread keeps its own handlers)."""
    caught = Caught()
    if threading.current_thread() is not threading.main_thread():
        yield caught
        return

    def handler(signum: int, _frame: object) -> None:
        caught.name = signal.Signals(signum).name
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in SIGNALS}
    try:
        yield caught
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
