"""`hicmd check`: what this installation can do, in the lines a bug report needs."""

from __future__ import annotations

import importlib
import importlib.metadata
import platform
import re
from typing import Any

import typer

NAME = "check"
EXAMPLES = ("hicmd check", "hicmd check --json > env.json   # attach to a bug report")

# optional packages and the extra that brings each (hicmd.extras.EXTRA_OF has the module names)
_OPTIONAL = (("onnx", "onnx"), ("onnxconverter_common", "onnxconverter-common"), ("matplotlib", "matplotlib"),
             ("tritonclient", "tritonclient"), ("paho.mqtt", "paho-mqtt"), ("jsonschema", "jsonschema"))


def _version(module: str, dist: str | None = None) -> str | None:
    """The version of an importable module (None when it cannot be imported: missing or broken)."""
    try:
        mod = importlib.import_module(module)
    except Exception:  # not installed, or installed but broken: both mean "cannot use it"
        return None
    try:
        return importlib.metadata.version(dist or module)
    except importlib.metadata.PackageNotFoundError:  # JetPack's system packages have no pip metadata
        return str(getattr(mod, "__version__", "installed"))


def _opencv() -> dict[str, Any]:
    import cv2

    info = cv2.getBuildInformation()

    def flag(name: str) -> str:
        match = re.search(rf"^\s*{name}:\s*(\S+)", info, re.MULTILINE)
        return match.group(1) if match else "?"

    gui = flag("GUI")
    return {"version": cv2.__version__, "gstreamer": flag("GStreamer").upper().startswith("YES"),
            "ffmpeg": flag("FFMPEG").upper().startswith("YES"), "gui": gui if gui.upper() != "NONE" else None}


def _torch() -> dict[str, Any] | None:
    if _version("torch") is None:
        return None
    import torch

    cuda = torch.cuda.is_available()
    return {"version": torch.__version__, "cuda": torch.version.cuda,
            "device": torch.cuda.get_device_name(0) if cuda else None}


def environment() -> dict[str, Any]:
    """Everything `hicmd check` reports, as a JSON-able dict."""
    import numpy
    import onnxruntime

    from hicmd import __version__
    from hicmd.runtime.backends.cuda import cuda_device

    gpu = cuda_device()
    return {
        "hicmd": __version__, "python": platform.python_version(), "platform": platform.platform(),
        "numpy": numpy.__version__, "opencv": _opencv(),
        "onnxruntime": {"version": onnxruntime.__version__, "providers": onnxruntime.get_available_providers()},
        "tensorrt": _version("tensorrt"),
        "cuda_device": {"name": gpu[0], "compute_capability": gpu[1]} if gpu else None,
        "torch": _torch(),
        "optional": {pip: _version(module, pip) for module, pip in _OPTIONAL},
    }


def command(
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of lines."),
) -> None:
    """Versions and capabilities of this install (hicmd, Python, numpy, OpenCV, ONNX Runtime, TensorRT, CUDA,
    torch): paste the output into a bug report."""
    import json

    env = environment()
    if as_json:
        typer.echo(json.dumps(env, indent=1))
        return
    cv, ort, torch, gpu = env["opencv"], env["onnxruntime"], env["torch"], env["cuda_device"]
    trt_hint = "not installed: pip install 'hicmd[trt]'"
    torch_hint = "not installed (the runtime does not need it): pip install 'hicmd[train]'"
    yes_no = {True: "yes", False: "no"}
    lines = [
        f"hicmd        {env['hicmd']}",
        f"python       {env['python']} ({env['platform']})",
        f"numpy        {env['numpy']}",
        f"opencv       {cv['version']} (GStreamer {yes_no[cv['gstreamer']]}, FFmpeg {yes_no[cv['ffmpeg']]}, "
        f"GUI {cv['gui'] or 'none: headless'})",
        f"onnxruntime  {ort['version']} (providers: {', '.join(ort['providers'])})",
        f"tensorrt     {env['tensorrt'] or trt_hint}",
        f"cuda device  {gpu['name'] + ' (compute ' + gpu['compute_capability'] + ')' if gpu else 'none'}",
        f"torch        {_torch_line(torch) if torch else torch_hint}",
    ]
    lines += [f"{pip:<12} {version or 'not installed'}" for pip, version in env["optional"].items()]
    typer.echo("\n".join(lines))


def _torch_line(torch: dict[str, Any]) -> str:
    device = f", {torch['device']}" if torch["device"] else ""
    return f"{torch['version']} (CUDA {torch['cuda'] or 'none'}{device})"
