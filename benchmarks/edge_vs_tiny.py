"""`edge` vs `tiny` on held-out SynthVI people, each trained for the same CPU time, plus embedder latency.

The issue-17 comparison, as a sequence of CLI verbs (each printed before it runs):

1. `hicmd synth --ids 200 --seed 2027`: 100 training and 100 held-out identities from a universe no test uses.
2. For each preset, the same CPU budget: `--minutes` x `--threads` CPU-minutes (10 x 2: what two cores give in ten
   minutes), counted in the training process's own CPU time (log.csv `cpu_time`, all its threads), not wall time.
   A probe run (100 warm-up + 10 full iterations) measures the CPU seconds of a warm-up (HFL-only) and of a full
   (ID-PIG + HFL) iteration; the real run then gets as many warm-up iterations as fit in the budget after the
   preset's full iterations (step_size kept in proportion). The real run writes no periodic checkpoints or sample
   grids (only at its end), so the probe's per-iteration cost is the run's: the 45-iteration wall-clock probe of
   the first version missed those and edge ran 668 s of a 600 s budget.
3. `hicmd eval --direction v2t`: visible -> thermal rank-1 / mAP on the held-out people.
4. `hicmd bench --config tiny,edge,paper --backend onnxruntime --precision fp32,int8`: embedder latency, FP32
   and INT8 (random weights, INT8 calibrated on random crops, all-INT8: neither changes latency much; an export's
   INT8 graph may keep a few convolutions float, listed in its manifest).

Fair on a shared machine: CPU time counts only the cycles the training process got, so a preset trained while
other workers compete for the cores gets the same work as one trained alone, where wall-clock budgets give it
less. The runs set OMP_WAIT_POLICY=PASSIVE, so OpenMP threads that wait for a descheduled sibling sleep instead of
spinning (spinning would count as CPU time). What CPU time does not remove: a busy machine makes each cycle
slower (shared caches and memory bandwidth, SMT siblings): a tiny warm-up iteration measured 0.59 CPU s under load
9-11 against at most 0.40 quiet (README), so run both presets under the same, preferably quiet, conditions. Each run's
CPU and wall seconds are reported, and a run more than 5 % off its budget is flagged.

    .venv/bin/python benchmarks/edge_vs_tiny.py --out bench-edge                 # the full 2 x 10 minutes x 2 cores
    .venv/bin/python benchmarks/edge_vs_tiny.py --out bench-edge --minutes 2.5   # a scaled-down, indicative run

Results: OUT/comparison.json and OUT/comparison.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

from hicmd.config import load_config
from hicmd.runtime.atomic import write_atomically


PROBE_WARM, PROBE_FULL, PROBE_SKIP = 100, 10, 10  # the probe's iterations; the first PROBE_SKIP are start-up
OFF_BUDGET = 0.05  # a run this far from its CPU budget is flagged


def hicmd(*args: str, threads: int) -> None:
    print(f"$ hicmd {shlex.join(args)}", flush=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OMP_WAIT_POLICY": "PASSIVE"}
    subprocess.run([sys.executable, "-m", "hicmd", *args], check=True, env=env)


def phase_cpu_seconds(log: Path, warmup: int) -> tuple[float, float]:
    """Mean CPU seconds of a warm-up and of a full iteration from a probe's log.csv (logged every iteration)."""
    cpu = {int(r["iteration"]): float(r["cpu_time"]) for r in csv.DictReader(log.open())}
    warm = (cpu[warmup] - cpu[PROBE_SKIP]) / (warmup - PROBE_SKIP)
    full = (cpu[max(cpu)] - cpu[warmup]) / (max(cpu) - warmup)
    return warm, full


def budget_iterations(preset: str, data: str, out: Path, cpu_seconds: float, threads: int) -> tuple[int, int, int]:
    """(iters, warmup_id, step_size) that fill `cpu_seconds` with the preset's shape of training."""
    t = load_config(preset).train
    probe = out / f"{preset}-probe"
    hicmd("train", "--config", preset, "--data", data, "--out", str(probe), "--iters", str(PROBE_WARM + PROBE_FULL),
          "--set", f"train.warmup_id={PROBE_WARM}", "--set", "train.log_every=1", *_NO_PERIODIC_OUTPUT,
          "--no-eval", "--no-progress", threads=threads)
    warm, full = phase_cpu_seconds(probe / "log.csv", PROBE_WARM)
    pig = t.iters - t.warmup_id  # the preset's full iterations after the warm-up
    warmup = max(1, int((cpu_seconds - pig * full) / warm))
    iters = warmup + pig
    return iters, warmup, max(1, round(iters * t.step_size / t.iters))


# checkpoints and sample grids only at the last iteration: no periodic cost the probe would not see
_NO_PERIODIC_OUTPUT = ("--set", "train.save_every=1000000", "--set", "train.sample_every=1000000")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench-edge"))
    parser.add_argument("--minutes", type=float, default=10.0,
                        help="training budget per preset: minutes of --threads cores, in CPU time")
    parser.add_argument("--presets", default="tiny,edge")
    parser.add_argument("--seed", type=int, default=2027, help="SynthVI universe (no test uses 2027)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-latency", action="store_true")
    args = parser.parse_args()
    out, threads = args.out, args.threads
    out.mkdir(parents=True, exist_ok=True)
    data = out / "data"
    if not (data / "synthvi.json").is_file():
        hicmd("synth", "--out", str(data), "--ids", "200", "--seed", str(args.seed), threads=threads)
    spec = f"regdb:{data}"
    results: dict[str, dict] = {}
    for preset in args.presets.split(","):
        budget = args.minutes * 60 * threads
        iters, warmup, step = budget_iterations(preset, spec, out, budget, threads)
        run = out / preset
        hicmd("train", "--config", preset, "--data", spec, "--out", str(run), "--iters", str(iters),
              "--set", f"train.warmup_id={warmup}", "--set", f"train.step_size={step}", *_NO_PERIODIC_OUTPUT,
              "--no-eval", "--no-progress", threads=threads)
        rows = list(csv.DictReader((run / "log.csv").open()))
        cpu = float(rows[-1]["cpu_time"])
        if abs(cpu / budget - 1) > OFF_BUDGET:
            print(f"warning: {preset} trained {cpu:.0f} CPU s for a {budget:.0f} CPU s budget", flush=True)
        hicmd("eval", str(run / "last.pt"), "--data", spec, "--direction", "v2t", "--out", str(out / f"{preset}-eval"),
              threads=threads)
        v2t = json.loads((out / f"{preset}-eval" / "metrics.json").read_text())["settings"]["v2t"]
        results[preset] = {"iters": iters, "warmup_id": warmup, "cpu_budget_seconds": budget, "cpu_seconds": cpu,
                           "wall_seconds": float(rows[-1]["time"]),
                           "r1": v2t["r1"], "r5": v2t["r5"], "mAP": v2t["mAP"]}
    latency: dict[str, dict[str, float]] = {}  # config -> "fp32 b1" -> p50 ms
    if not args.no_latency:
        hicmd("bench", "--config", "tiny,edge,paper", "--batch", "1,8", "--backend", "onnxruntime", "--precision",
              "fp32,int8", "--threads", str(threads), "--out", str(out / "latency"), threads=threads)
        for row in json.loads((out / "latency" / "bench.json").read_text())["embedder"]:
            if row["status"] == "ok":
                latency.setdefault(row["config"], {})[f"{row['precision']} b{row['batch']}"] = row["p50_ms"]
    report = {"minutes": args.minutes, "threads": threads, "seed": args.seed, "accuracy": results,
              "latency_p50_ms_ort_fp32": latency}
    write_atomically(out / "comparison.json", json.dumps(report, indent=1) + "\n")
    columns = ["fp32 b1", "fp32 b8", "int8 b1", "int8 b8"]
    lines = ["| preset | iterations (warm-up) | train CPU s (wall s) | v->t R1 | R5 | mAP "
             "| ORT p50 ms: FP32 b1 | FP32 b8 | INT8 b1 | INT8 b8 |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name in dict.fromkeys([*results, *latency]):
        r, lat = results.get(name, {}), latency.get(name, {})
        cells = [f"{r['iters']} ({r['warmup_id']})", f"{r['cpu_seconds']:.0f} ({r['wall_seconds']:.0f})",
                 f"{r['r1']:.1f}", f"{r['r5']:.1f}",
                 f"{r['mAP']:.1f}"] if r else ["-"] * 5
        lines.append(f"| {name} | " + " | ".join(cells + [f"{lat.get(c, float('nan')):.2f}" for c in columns]) + " |")
    write_atomically(out / "comparison.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
