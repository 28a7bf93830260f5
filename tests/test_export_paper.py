"""The `paper` config (ResNet-50, 256x128) through the whole export with FP32 and FP16 parity gates (slow)."""

from __future__ import annotations

import time

import pytest
import torch

from hicmd.export.opcheck import check_tensorrt
from hicmd.export.pipeline import ExportOptions, run_export
from hicmd.runtime.manifest import load_manifest
from testkit.checkpoints import make_checkpoint


@pytest.mark.slow
def test_paper_export_fp32_fp16_parity(tmp_path):
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # 2 shared cores: one intra-op thread is faster than two contended ones
    try:
        start = time.perf_counter()
        ckpt = make_checkpoint(tmp_path / "paper.pt", "paper")
        # 16 parity crops, not the default 64: the gates are the same code on any count, and each crop costs the
        # paper graphs about 0.7 s on 2 cores (this test: 92 s with 64, 57 s with 16)
        result = run_export(ckpt, tmp_path / "model", ExportOptions(fp16=True, crops=16))
        elapsed = time.perf_counter() - start
    finally:
        torch.set_num_threads(before)
    print(f"paper export + FP32/FP16 parity: {elapsed:.0f} s")
    assert not result.failed, result.failed
    assert result.ok and result.manifest is not None
    manifest = load_manifest(tmp_path / "model")
    assert manifest.input.height == 256 and manifest.embedding_dim == 2048
    assert manifest.attribute_layout["style"] == [0, 256] and manifest.attribute_layout["illumination"] == [384, 512]
    onnx_parity = manifest.parity["onnx"]
    assert onnx_parity["rgb"]["crops"] == 16 and onnx_parity["rgb"]["cosine_min"] >= 0.99999
    assert onnx_parity["ir.fp16"]["cosine_mean"] >= 0.999
    for artifact in manifest.artifacts:
        assert check_tensorrt(manifest.path(artifact)) == []
