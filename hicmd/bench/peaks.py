"""This machine's measured GEMM peaks per precision, the ceilings the bench's "% peak" column divides by. Torch-free.

- fp32 (sgemm): the fastest of ONNX Runtime's MatMul, numpy's BLAS (only when `threads` is every core, the count
  it uses by itself) and torch.mm (when torch is installed);
- int8: ONNX Runtime's MatMulInteger, uint8 x int8 -> int32 (MLAS QGEMM: the AVX512-VNNI / AVX-VNNI / AMX kernels
  the INT8 graphs' QLinearConv use), counted as 2 ops per multiply-add like the others;
- bf16: OpenVINO's MatMul with BF16 inference and torch.mm on bfloat16, where installed and the CPU has BF16.
Each is the best of `repeats` n x n x n products. The two ONNX graphs ship in hicmd/bench/gemm_graphs/ (tiny files,
made by `write_peak_graphs` with onnx) so no onnx or torch is needed on the edge box.
"""

from __future__ import annotations

import importlib.util
import os
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from hicmd.bench.rows import Peak
from hicmd.runtime.atomic import write_atomically

__all__ = ["PEAK_GRAPHS", "write_peak_graphs", "sgemm_peak", "int8_peak", "bf16_peak", "measure_peaks",
           "peak_class"]

PEAK_GRAPHS = {"fp32": Path(__file__).parent / "gemm_graphs" / "matmul_f32.onnx",
               "int8": Path(__file__).parent / "gemm_graphs" / "matmul_u8s8.onnx"}


def write_peak_graphs(folder: Path | None = None) -> dict[str, Path]:
    """(Re)write the two GEMM graphs (needs onnx): Y = A @ B with A, B graph inputs of dynamic size."""
    import onnx
    from onnx import TensorProto, helper

    graphs = {"fp32": ("MatMul", TensorProto.FLOAT, TensorProto.FLOAT, TensorProto.FLOAT),
              "int8": ("MatMulInteger", TensorProto.UINT8, TensorProto.INT8, TensorProto.INT32)}
    written = {}
    for name, (op, a, b, y) in graphs.items():
        graph = helper.make_graph([helper.make_node(op, ["A", "B"], ["Y"])], f"hicmd_peak_{name}",
                                  [helper.make_tensor_value_info("A", a, ["M", "K"]),
                                   helper.make_tensor_value_info("B", b, ["K", "N"])],
                                  [helper.make_tensor_value_info("Y", y, ["M", "N"])])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="hicmd")
        model.ir_version = 8
        onnx.checker.check_model(model, full_check=True)
        path = (folder or PEAK_GRAPHS[name].parent) / PEAK_GRAPHS[name].name
        path = write_atomically(path, model.SerializeToString())  # the packaged graphs: never half of one
        written[name] = path
    return written


def _best(fn: Callable[[], Any], repeats: int) -> float:
    fn()  # warm-up: thread pools, packing buffers
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _ort_matmul(kind: str, a: np.ndarray, b: np.ndarray, threads: int, repeats: int) -> float:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = onnxruntime.InferenceSession(str(PEAK_GRAPHS[kind]), options, providers=["CPUExecutionProvider"])
    return _best(lambda: session.run(None, {"A": a, "B": b}), repeats)


def _result(seconds: dict[str, float], n: int, threads: int, repeats: int, what: str) -> Peak:
    gflops = {k: 2.0 * n**3 / t / 1e9 for k, t in seconds.items()}
    winner = max(gflops, key=gflops.get)
    return Peak(gflops[winner], n, threads, seconds[winner], gflops, f"{winner} {what} {n}x{n}x{n}, best of {repeats}")


def sgemm_peak(threads: int, n: int = 2048, repeats: int = 5) -> Peak:
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n), np.float32), rng.standard_normal((n, n), np.float32)
    seconds = {"onnxruntime MatMul": _ort_matmul("fp32", a, b, threads, repeats)}
    if threads == os.cpu_count():
        out = np.empty((n, n), np.float32)
        seconds["numpy matmul"] = _best(lambda: np.matmul(a, b, out=out), repeats)
    if importlib.util.find_spec("torch") is not None:
        import torch

        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            x, y, z = torch.from_numpy(a), torch.from_numpy(b), torch.empty(n, n)
            seconds["torch.mm"] = _best(lambda: torch.mm(x, y, out=z), repeats)
        finally:
            torch.set_num_threads(previous)
    return _result(seconds, n, threads, repeats, "float32")


def int8_peak(threads: int, n: int = 2048, repeats: int = 5) -> Peak:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (n, n), dtype=np.uint8)
    b = rng.integers(-128, 128, (n, n), dtype=np.int8)
    seconds = {"onnxruntime MatMulInteger": _ort_matmul("int8", a, b, threads, repeats)}
    return _result(seconds, n, threads, repeats, "uint8 x int8 -> int32 (GOP/s)")


def bf16_peak(threads: int, n: int = 2048, repeats: int = 5) -> Peak | None:
    """None when neither OpenVINO nor torch can run a BF16 GEMM here (or the CPU has no BF16)."""
    from hicmd.runtime.cpu import cpu_info

    if not cpu_info().bf16:
        return None
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n), np.float32), rng.standard_normal((n, n), np.float32)
    seconds: dict[str, float] = {}
    if importlib.util.find_spec("openvino") is not None:
        import openvino as ov
        import openvino.properties as props
        import openvino.properties.hint as hints
        from openvino import opset13 as ops

        x = ops.parameter([n, n], ov.Type.f32, name="A")
        model = ov.Model([ops.matmul(x, ops.constant(b), False, False)], [x], "hicmd_peak_bf16")
        compiled = ov.Core().compile_model(model, "CPU", {hints.inference_precision: ov.Type.bf16,
                                                          props.inference_num_threads: threads})
        request = compiled.create_infer_request()
        seconds["openvino MatMul"] = _best(lambda: request.infer({0: a}), repeats)
    if importlib.util.find_spec("torch") is not None:
        import torch

        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            x, y = torch.from_numpy(a).bfloat16(), torch.from_numpy(b).bfloat16()
            z = torch.empty(n, n, dtype=torch.bfloat16)
            seconds["torch.mm"] = _best(lambda: torch.mm(x, y, out=z), repeats)
        finally:
            torch.set_num_threads(previous)
    return _result(seconds, n, threads, repeats, "bfloat16") if seconds else None


def measure_peaks(threads: int, n: int = 2048, repeats: int = 5) -> dict[str, Peak | None]:
    """{"fp32": ..., "int8": ..., "bf16": ... or None}."""
    return {"fp32": sgemm_peak(threads, n, repeats), "int8": int8_peak(threads, n, repeats),
            "bf16": bf16_peak(threads, n, repeats)}


def peak_class(precision: str, device: str) -> str:
    """Which peak a row's "% peak" divides by: INT8 and BF16 rows by theirs, the rest by the sgemm peak."""
    return precision if device == "cpu" and precision in ("int8", "bf16") else "fp32"
