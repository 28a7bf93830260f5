"""Options that several verbs share, defined once so that a flag means the same thing in every verb.

The conventions (tests/test_cli_consistency.py checks them):
- a training checkpoint (.pt) is CHECKPOINT: the argument of the verbs that need one (eval, export);
- `--model/-m DIR` is always an export folder with manifest.json (what `hicmd export` writes);
- `--out/-o` is always where a verb writes, `--config/-c` always a preset or config file;
- `--device` defaults to auto (CUDA when present) everywhere; `--batch` is always images per forward pass;
- a flag that is a switch in one verb is a switch in all; a renamed flag keeps its old spelling as a hidden option.
"""

from __future__ import annotations

import os
from typing import Annotated, Optional

import typer

from hicmd.choices import Backend, Device, Precision

MODEL_HELP = "Export folder with manifest.json (hicmd export CHECKPOINT --out DIR)."
CHECKPOINT_HELP = "Training checkpoint (.pt) that hicmd train wrote (e.g. runs/x/last.pt)."
DEVICE_HELP = "Where to run: auto uses CUDA when present."
BACKEND_HELP = ("Inference backend: auto picks TensorRT on a GPU, else OpenVINO or ONNX Runtime; torch needs the "
                "checkpoint next to manifest.json; triton needs --url.")
PRECISION_HELP = ("Embedder precision: auto picks the fastest the export has for the backend (int8: hicmd export "
                  "--int8; bf16: OpenVINO).")
THREADS_HELP = "CPU threads for inference (default: the backend's own, every core)."
# more threads than this only thrash (100,000 took minutes to start); a few per core leave room for oversubscribing
MAX_THREADS = 4 * (os.cpu_count() or 1)
TORCH_DEVICES = "auto, cpu, cuda or cuda:N"


def torch_device(text: str) -> str:
    """A torch device the training verbs accept: auto, cpu, cuda or cuda:N."""
    if text in ("auto", "cpu", "cuda") or (text.startswith("cuda:") and text[5:].isdigit()):
        return text
    raise typer.BadParameter(f"{text!r}: use {TORCH_DEVICES}")


def model_option(more: str = "") -> typer.models.OptionInfo:
    """`--model/-m DIR`: MODEL_HELP, then what this verb does with it."""
    return typer.Option("--model", "-m", metavar="DIR", help=f"{MODEL_HELP} {more}".strip())


def out_option(what: str) -> typer.models.OptionInfo:
    """`--out/-o`: where the verb writes `what`."""
    return typer.Option("--out", "-o", help=what)


BackendOption = Annotated[Backend, typer.Option("--backend", help=BACKEND_HELP)]
DeviceOption = Annotated[Device, typer.Option("--device", help=DEVICE_HELP)]
# the torch verbs (train, eval) also take cuda:N; the runtime picks its GPU itself
TorchDeviceOption = Annotated[str, typer.Option("--device", parser=torch_device, metavar="[auto|cpu|cuda|cuda:N]",
                                                help=DEVICE_HELP)]
PrecisionOption = Annotated[Precision, typer.Option("--precision", help=PRECISION_HELP)]
ThreadsOption = Annotated[Optional[int], typer.Option("--threads", min=1, max=MAX_THREADS, help=THREADS_HELP)]
