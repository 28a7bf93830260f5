"""The fixed choices of hicmd as types, torch-free: str Enums for the CLI (and `Modality`, from hicmd.modality).

Typer validates an Enum option and lists its values in --help, so a typo is one line with the choices instead of
a check written by hand in each verb. The values are the strings the rest of the code already uses (the runtime's
BACKENDS/DEVICES/PRECISIONS, the config's AMP_MODES, ...); tests/test_cli_consistency.py keeps them in step.
Pass `.value` on to code that compares or formats strings.
"""

from __future__ import annotations

from enum import Enum

from hicmd.modality import MODALITIES, Modality

__all__ = ["Modality", "MODALITIES", "ModalityChoice", "Backend", "Device", "Precision", "Direction", "SearchMode",
           "Swap", "Amp", "CalibMethod", "Cues", "Rig"]

class ModalityChoice(str, Enum):
    """`Modality` as a CLI option (Typer reads Enums on every version the package allows, Literals only lately)."""

    rgb = "rgb"
    ir = "ir"


class Backend(str, Enum):
    """Inference backend of the runtime; auto picks TensorRT on a GPU, else OpenVINO or ONNX Runtime."""

    auto = "auto"
    tensorrt = "tensorrt"
    onnxruntime = "onnxruntime"
    openvino = "openvino"
    torch = "torch"
    triton = "triton"


class Device(str, Enum):
    """Where the runtime runs; auto: CUDA when present. The torch verbs also take cuda:N (hicmd/commands/_options)."""

    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Precision(str, Enum):
    """Embedder precision; auto: the fastest the export has for the backend."""

    auto = "auto"
    fp32 = "fp32"
    fp16 = "fp16"
    int8 = "int8"
    bf16 = "bf16"


class Direction(str, Enum):
    """Query direction of a cross-modality evaluation."""

    v2t = "v2t"  # visible query, thermal gallery
    t2v = "t2v"
    both = "both"


class SearchMode(str, Enum):
    """SYSU-MM01 search mode."""

    all = "all"
    indoor = "indoor"
    both = "both"


class Swap(str, Enum):
    """ID-excluded attributes a translation takes from the reference image."""

    illumination = "illumination"
    pose = "pose"
    both = "both"


class Amp(str, Enum):
    """Mixed precision of training (the config's train.amp)."""

    none = "none"
    bf16 = "bf16"
    fp16 = "fp16"


class CalibMethod(str, Enum):
    """INT8 calibration of the activation ranges."""

    max = "max"
    entropy = "entropy"
    percentile = "percentile"


class Cues(str, Enum):
    """Cues of the RGB<->IR association, each adding to the one before."""

    appearance = "appearance"
    time = "time"
    geometry = "geometry"


class Rig(str, Enum):
    """Camera rig of SynthVI clips."""

    bispectrum = "bispectrum"
    separate = "separate"
