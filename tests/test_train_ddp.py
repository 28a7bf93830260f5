"""Two-process training under torchrun (gloo on CPU): replicas must end with identical weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch.distributed as dist

from testkit.train import write_synth

WORKER = """
import dataclasses, json, os, sys
sys.path.insert(0, {tests!r})
from testkit.train import micro_config
from hicmd.train.loop import train
summary = train(micro_config(), {data!r}, {out!r}, iters=2, show_progress=False)
with open(os.path.join({out!r}, f"rank{{summary.rank}}.json"), "w") as fh:
    json.dump(dataclasses.asdict(summary), fh, default=str)
"""


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs torch.distributed gloo")
def test_two_gloo_processes_keep_identical_replicas(tmp_path):
    data = f"regdb:{write_synth(tmp_path / 'synth', ids=12)}"
    out = tmp_path / "run"
    out.mkdir()
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(tests=str(Path(__file__).parent), data=data, out=str(out)))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    r0, r1 = (json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["world_size"] == r1["world_size"] == 2 and r0["trained"] == r1["trained"] == 2
    assert r0["weights_sha1"] == r1["weights_sha1"]
    assert r0["skipped"] == r1["skipped"] == 0
    # rank 0 alone writes the run folder: one header + two rows
    assert (out / "last.pt").is_file() and (out / "log.csv").read_text().count("\n") == 3
