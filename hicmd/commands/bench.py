"""`hicmd bench`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from hicmd.choices import Backend, Precision
from hicmd.commands._options import MAX_THREADS, model_option, out_option
from hicmd.errors import UserError

NAME = "bench"
EXAMPLES = ("hicmd bench -m model/ --batch 1,8 --backend onnxruntime,openvino",
            "hicmd bench -c paper,tiny --quick --stream --train -o bench-out/")

# what bench rows time, in this order: each backend at a fixed precision (not auto, the runtime's pick, nor triton, a
# server elsewhere); Backend(...) / Precision(...) keep the names those of the other verbs
BACKENDS = tuple(Backend(b).value for b in ("torch", "onnxruntime", "openvino", "tensorrt"))
PRECISIONS = tuple(Precision(p).value for p in ("fp32", "fp16", "int8", "bf16"))


def _list(text: str, what: str, allowed: tuple[str, ...], aliases: dict[str, str] | None = None) -> list[str]:
    if text.strip().lower() == "all":
        return list(allowed)
    items = [(aliases or {}).get(t.strip().lower(), t.strip().lower()) for t in text.split(",")]
    bad = [t for t in items if t not in allowed]  # an empty entry too (onnxruntime,,torch): a word went missing
    if bad or not items:
        raise UserError(f"--{what} {text!r}: use a comma-separated list of {', '.join(allowed)} (or all)")
    return list(dict.fromkeys(items))


def _batches(text: str) -> list[int]:
    try:
        batches = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        batches = []
    if not batches or min(batches) < 1 or max(batches) > 4096:  # 100,000,000 crops asked numpy for 894 GiB
        raise UserError(f"--batch {text!r}: use comma-separated integers from 1 to 4096, e.g. 1,8,32")
    return sorted(set(batches))


def command(
    config: str = typer.Option("paper,tiny", "--config", "-c", help="Presets to measure, comma-separated "
                               "(ignored with --model: the export folder has its config)."),
    batch: str = typer.Option("1,8,32", "--batch", help="Images per forward pass: a comma-separated list, each "
                              "timed."),
    backend: str = typer.Option("all", "--backend", help="Inference backends to time, comma-separated: "
                                f"{', '.join(BACKENDS)} or all."),
    precision: str = typer.Option("all", "--precision", help=f"Embedder precisions to time, comma-separated: "
                                  f"{', '.join(PRECISIONS)} or all. INT8 rows need an export with --int8; BF16 rows "
                                  "run on OpenVINO and torch autocast where the CPU has BF16."),
    model: Annotated[Optional[Path], model_option("Default: a random-initialised model of each config, exported "
                                                  "to a temp folder.")] = None,
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", metavar="CHECKPOINT", help="Training checkpoint "
                                              "(.pt) for the torch rows and parity with --model (default: the one "
                                              "manifest.json names)."),
    quick: bool = typer.Option(False, "--quick", help="Short timings (>= 20 runs or 2 s) for demos and tests."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads for inference, on every backend "
                                          "and for the sgemm peak (default: the physical cores)."),
    compile_: bool = typer.Option(False, "--compile", help="Also time torch.compile (minutes of compiling on a CPU)."),
    embedder: bool = typer.Option(True, "--embedder/--no-embedder", help="Time the embedder matrix."),
    stream: bool = typer.Option(False, "--stream", help="Also play a SynthVI clip through the stream pipeline."),
    clip: Optional[Path] = typer.Option(None, "--clip", metavar="DIR", help="Clip folder for --stream, or the output "
                                        "of 'hicmd synth --videos' (default: a small clip written to a temp folder)."),
    old_videos: Optional[Path] = typer.Option(None, "--videos", hidden=True, help="Old name of --clip (synth's "
                                              "--videos is a switch)."),
    train: bool = typer.Option(False, "--train", help="Also time the training step (iterations/s)."),
    out: Annotated[Path, out_option("Folder for bench.json, bench.md and bench.png.")] = Path("bench-out"),
) -> None:
    """Measure embedding latency and throughput for every available backend, the stream and the training step."""
    videos = clip if clip is not None else old_videos
    import tempfile

    from rich.console import Console

    from hicmd.bench import BenchOptions, run_bench
    from hicmd.bench.report import print_report, write_json, write_markdown, write_plot
    from hicmd.presets import PRESETS

    configs = _list(config, "config", tuple(PRESETS))
    opts = BenchOptions(
        configs=configs, batches=_batches(batch),
        backends=_list(backend, "backend", BACKENDS, {"ort": "onnxruntime", "trt": "tensorrt", "ov": "openvino"}),
        precisions=_list(precision, "precision", PRECISIONS), model=model, checkpoint=checkpoint, quick=quick,
        threads=threads, compile=compile_, embedder=embedder, stream=stream, clip=videos, train=train)
    if threads is not None and not 1 <= threads <= MAX_THREADS:
        raise UserError(f"--threads must be 1 to {MAX_THREADS} (4 per core here), got {threads}")
    if model is not None and not model.is_dir():
        raise UserError(f"--model {model} is not a folder; point it at the output of 'hicmd export'")
    if checkpoint is not None and not checkpoint.is_file():
        raise UserError(f"--checkpoint {checkpoint} not found")
    if checkpoint is not None and model is None:
        raise UserError("--checkpoint goes with --model (an export folder); without --model a random model is used")
    if videos is not None and not videos.is_dir():
        raise UserError(f"--clip {videos} is not a folder")
    if videos is not None and not stream:
        raise UserError("--clip is the clip --stream plays: add --stream (or leave --clip out)")
    if not (embedder or stream or train):
        raise UserError("nothing to measure: --no-embedder needs --stream or --train")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create --out {out}: {exc.strerror}") from None

    console = Console(stderr=True, log_path=False)
    with tempfile.TemporaryDirectory(prefix="hicmd-bench-") as work, console.status("benchmarking") as status:
        result = run_bench(opts, Path(work), log=lambda m: console.log(m),
                           progress=lambda m: status.update(f"timing {m}"))
    print_report(result, Console())
    written = [write_json(result, out / "bench.json"), write_markdown(result, out / "bench.md"),
               write_plot(result, out / "bench.png")]
    console.print("wrote " + ", ".join(str(p) for p in written if p is not None))
    if embedder and result.embedder and all(row.status != "ok" for row in result.embedder):
        # every row asked for was skipped or failed: the reasons are in the table; no figure came of it
        raise UserError(f"no embedder row could be measured: {result.embedder[0].status} (and the others, in the "
                        "table above); wrote the reasons to " + str(out / "bench.json"))
    if result.weights.startswith("random"):
        console.print("[yellow]random-initialised weights: the weights do not change latency (FP16 parity with "
                      "trained weights can differ; measure an export with --model for that)[/yellow]")
