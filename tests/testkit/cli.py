"""Running `hicmd` as a user does, and checking that a mistake gets one clear line: `error: ...`, exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def hicmd(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hicmd", *args], capture_output=True, text=True, timeout=timeout,
                          cwd=REPO)


def one_line(proc: subprocess.CompletedProcess, message: str) -> None:
    """Exit 2, no traceback, and exactly one `error:` line, holding `message`."""
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and message in proc.stderr, proc.stderr
    assert len([line for line in proc.stderr.splitlines() if line.startswith("error:")]) == 1, proc.stderr
