"""The machine a bench ran on: CPU model, cores and flags, GPU, library versions, Jetson release, load."""

from __future__ import annotations

import importlib.util
import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any

from hicmd.runtime.cpu import cpu_info

__all__ = ["default_threads", "machine_info"]


def default_threads() -> int:
    """Physical cores (what ONNX Runtime and torch should use for one stream of inference)."""
    try:
        import psutil

        return psutil.cpu_count(logical=False) or os.cpu_count() or 1
    except ImportError:
        return os.cpu_count() or 1


def _run(cmd: list[str]) -> str | None:
    if shutil.which(cmd[0]) is None:
        return None
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(module: str) -> str | None:
    if importlib.util.find_spec(module) is None:
        return None
    try:
        return str(__import__(module).__version__)
    except Exception:  # a broken install (e.g. tensorrt without its libraries) is still worth a line
        return "installed (import failed)"


def machine_info(threads: int) -> dict[str, Any]:
    """CPU, GPU, driver, library versions, Jetson release and power mode, and the load when measuring."""
    info: dict[str, Any] = {
        "cpu": _cpu_model(), "logical_cores": os.cpu_count(), "physical_cores": default_threads(),
        "threads": threads,
        "load_average": [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "os": platform.platform(), "python": platform.python_version(),
        "versions": {m: _version(m) for m in ("numpy", "torch", "onnxruntime", "openvino", "tensorrt", "cv2")},
        "cpu_flags": cpu_info().summary()["flags"], "cpu_vendor": cpu_info().vendor,
        "gpu": _run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"]),
    }
    try:
        import onnxruntime

        info["onnxruntime_providers"] = list(onnxruntime.get_available_providers())
    except ImportError:
        pass
    tegra = Path("/etc/nv_tegra_release")
    if tegra.is_file():
        info["jetson_release"] = tegra.read_text().splitlines()[0].strip()
        info["jetson_power_mode"] = _run(["nvpmodel", "-q"])
    return info
