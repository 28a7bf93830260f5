"""What this CPU is and which low-precision instructions it has (from /proc/cpuinfo). Torch-free.

Backend choice and the benchmark's peaks depend on it: VNNI makes INT8 GEMMs ~4x FP32 ones, AVX512-BF16 / AMX make
BF16 inference worth it (OpenVINO's CPU plugin turns it on by default there), and `--backend auto` takes OpenVINO
on Intel CPUs, on other x86-64 CPUs with AVX-512, and on AVX2-only ones for INT8 with OpenVINO's own INT8 IR
(runtime/backends/choice.py).
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path

__all__ = ["CpuInfo", "cpu_info", "LOW_PRECISION_FLAGS", "U8U8", "int8_safe", "cpu_session"]

# the flags that decide INT8 / BF16 speed, as Linux names them
LOW_PRECISION_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_int8",
                       "amx_bf16", "avx_vnni_int8", "fma")


class CpuInfo:
    def __init__(self, model: str, vendor: str, flags: frozenset[str]) -> None:
        self.model, self.vendor, self.flags = model, vendor, flags

    @property
    def intel(self) -> bool:
        return self.vendor == "GenuineIntel"

    @property
    def vnni(self) -> bool:
        return bool({"avx512_vnni", "avx_vnni", "amx_int8"} & self.flags)

    @property
    def simd(self) -> str | None:
        """The widest x86 vector extension ("AVX-512", "AVX2"), None elsewhere (Arm, old x86)."""
        return "AVX-512" if "avx512f" in self.flags else "AVX2" if "avx2" in self.flags else None

    @property
    def u8s8_saturates(self) -> bool:
        """ONNX Runtime runs an INT8 graph's integer GEMMs on x86 as U8S8; without VNNI (AVX2's VPMADDUBSW) the
        kernels add pairs of products in 16 bits, which saturate (docs/reference/quantization.md, pitfall 1)."""
        return "avx2" in self.flags and not self.vnni

    @property
    def bf16(self) -> bool:
        return bool({"avx512_bf16", "amx_bf16"} & self.flags)

    def summary(self) -> dict[str, object]:
        return {"model": self.model, "vendor": self.vendor,
                "flags": [f for f in LOW_PRECISION_FLAGS if f in self.flags]}


@functools.lru_cache(maxsize=1)
def cpu_info(cpuinfo: str = "/proc/cpuinfo") -> CpuInfo:
    model, vendor, flags = platform.processor() or platform.machine(), "", frozenset()
    try:
        for line in Path(cpuinfo).read_text().splitlines():
            key, _, value = line.partition(":")
            key, value = key.strip(), value.strip()
            if key == "model name" and model in ("", platform.processor() or platform.machine()):
                model = value
            elif key == "vendor_id" and not vendor:
                vendor = value
            elif key == "flags" and not flags:
                flags = frozenset(value.split())
    except OSError:
        pass
    return CpuInfo(model, vendor, flags)


# ONNX Runtime's session entry for U8U8 INT8 kernels on x86 (its default is U8S8)
U8U8 = ("session.x64quantprecision", "1")


def int8_safe(options) -> None:  # noqa: ANN001 - an onnxruntime.SessionOptions (onnxruntime stays an optional import)
    """Have an ONNX Runtime session run INT8 graphs as U8U8 where U8S8 saturates (x86 without VNNI): slower, but as
    accurate as the graph (on a 2-core AVX2 EPYC the demo model's INT8 cosine to FP32, min over 64 stills, 0.994 as
    U8S8, 0.998 as U8U8), and export's gates measure it so. Float graphs are not affected."""
    if cpu_info().u8s8_saturates:
        options.add_session_config_entry(*U8U8)


def cpu_session(model: str | Path | bytes, threads: int | None = None):  # noqa: ANN201 - an InferenceSession
    """An ONNX Runtime session of `model` (a path, or a serialized graph) on the CPU provider, run as int8_safe
    says: export's measurements of a graph run it as the stream's backend does."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    int8_safe(options)
    return onnxruntime.InferenceSession(model if isinstance(model, bytes) else str(model), options,
                                        providers=["CPUExecutionProvider"])
