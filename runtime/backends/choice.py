"""The CPU-side choices of `open_backend`, each with the one-line reason it gives: OpenVINO or ONNX Runtime for
`--backend auto`, and OpenVINO's inference precision (BF16 only where the CPU has it and the export's parity gates
passed it). Torch-free."""

from __future__ import annotations

import importlib.util

from ..cpu import cpu_info
from ..manifest import Artifact, Manifest
from .base import BackendError

__all__ = ["openvino_choice", "openvino_inference", "openvino_int8", "bf16_record"]


def openvino_choice(nncf_int8: bool = False) -> tuple[bool, str]:
    """(take OpenVINO, why) for `--backend auto` on the CPU: OpenVINO when it is installed, on Intel CPUs (the
    issue's rule), on other x86-64 CPUs with AVX-512, and on AVX2-only ones for INT8 when the folder has OpenVINO's
    own INT8 IR (`nncf_int8`). OpenVINO's CPU kernels (oneDNN) are chosen by instruction set, not by vendor: on an
    AMD Zen 4 (AVX-512, VNNI, BF16) it ran the paper embedder as fast as ONNX Runtime in FP32 and 1.8x / 1.25-3.3x
    faster in its gated BF16 / its own INT8; on an AVX2-only AMD EPYC as fast in FP32 and 1.6x / 1.7x faster with
    NNCF's INT8 IR than ONNX Runtime's INT8 at batch 1 / 8, while its INT8 on the Q/DQ graphs saturates there
    (README, INT8 section). Arm was not measured: ONNX Runtime."""
    cpu = cpu_info()
    installed = importlib.util.find_spec("openvino") is not None
    avx2_int8 = cpu.simd == "AVX2" and nncf_int8
    if not cpu.intel and cpu.simd != "AVX-512" and not avx2_int8:
        having = f"has {cpu.simd} only" if cpu.simd else "has no AVX-512"
        return False, (f"auto: ONNX Runtime ({cpu.vendor or cpu.model or 'this'} CPU {having}; OpenVINO is picked on "
                       "Intel CPUs, AVX-512 x86-64 CPUs, and AVX2 ones for INT8 with its own INT8 IR, where it was "
                       "measured faster)")
    if avx2_int8 and not cpu.intel:
        if not installed:
            return False, "auto: ONNX Runtime (AVX2 CPU, but openvino is not installed: pip install hicmd[openvino])"
        return True, ("auto: OpenVINO (AVX2 x86-64 CPU, INT8 with OpenVINO's own INT8 IR in the folder: measured "
                      "1.6x faster than ONNX Runtime's INT8 on an AVX2 AMD EPYC)")
    where = "Intel CPU" if cpu.intel else f"{cpu.vendor or 'x86-64'} CPU with AVX-512"
    if not installed:
        return False, f"auto: ONNX Runtime ({where}, but openvino is not installed: pip install hicmd[openvino])"
    if cpu.intel:
        return True, "auto: OpenVINO (Intel CPU with openvino installed)"
    return True, (f"auto: OpenVINO ({where} and openvino installed: its CPU kernels follow the instruction set, "
                  "and it measured faster than ONNX Runtime on AMD Zen 4)")


def bf16_record(manifest: Manifest) -> dict | None:
    """The export's OpenVINO BF16 parity record, or None when export did not measure it."""
    return (manifest.parity or {}).get("openvino", {}).get("bf16")


def openvino_inference(manifest: Manifest, precision: str) -> tuple[str, str | None]:
    """(inference precision fp32 | bf16, note) for OpenVINO running the graph `precision` names."""
    if precision not in ("auto", "bf16"):
        return "fp32", None  # fp32 / fp16 / int8 graphs: their float parts stay FP32
    from .openvino import supports_bf16

    record = bf16_record(manifest)
    if precision == "bf16":
        if record is not None and not record.get("passed"):
            raise BackendError("--precision bf16: OpenVINO BF16 failed its parity gates at export (see manifest.json "
                               "parity.openvino); use --precision fp32")
        return "bf16", None if record else "BF16 not parity-checked at export (openvino was not installed there)"
    if not supports_bf16():
        return "fp32", "fp32: this CPU has no BF16 (AVX512-BF16 / AMX)"
    if record is None:
        return "fp32", "fp32: BF16 was not parity-checked at export (re-export with openvino installed)"
    if not record.get("passed"):
        return "fp32", "fp32: BF16 failed its parity gates at export"
    return "bf16", "BF16: the CPU has it and it passed its parity gates at export"


def openvino_int8(manifest: Manifest, role: str, modality: str | None) -> tuple[Artifact | None, str]:
    """(artifact, note) for OpenVINO's `--precision int8`: its own INT8 IR (NNCF) when the manifest has one
    (export gated it like the Q/DQ graph), else None: the Q/DQ graph, refused when OpenVINO failed its gates."""
    found = manifest.find(role, modality, "int8", "openvino")
    if found:
        return found[0], "int8: OpenVINO's own INT8 IR (NNCF; faster than the Q/DQ graph on OpenVINO)"
    record = (manifest.parity or {}).get("openvino", {}).get("int8")
    if record is not None and not record.get("passed"):
        raise BackendError("--precision int8: OpenVINO on the INT8 Q/DQ graphs failed its gates at export (see "
                           "manifest.json parity.openvino.int8); use --backend onnxruntime or --precision fp32")
    return None, "int8: the Q/DQ graph (no OpenVINO INT8 IR in the manifest: export --int8 with nncf installed)"
