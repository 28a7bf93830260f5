"""`hicmd export`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from hicmd.choices import CalibMethod
from hicmd.commands._options import CHECKPOINT_HELP, out_option
from hicmd.errors import UserError

NAME = "export"
EXAMPLES = ("hicmd export runs/tiny/last.pt -o model/ --fp16",
            "hicmd export runs/regdb1/last.pt -o model/ --fp16 --engine --trt-batch 1:8:32 --int8 --calib regdb:DATA")


def _trt_batch(text: str, flag: str = "--trt-batch") -> tuple[int, int, int]:
    parts = text.split(":")
    try:
        low, opt, high = (int(p) for p in parts)
    except ValueError:
        raise UserError(f"{flag} {text!r} must be MIN:OPT:MAX, e.g. 1:8:32") from None
    if not 1 <= low <= opt <= high:
        raise UserError(f"{flag} {text!r} must satisfy 1 <= MIN <= OPT <= MAX")
    return low, opt, high


def command(
    checkpoint: Annotated[Path, typer.Argument(metavar="CHECKPOINT", help=CHECKPOINT_HELP)],
    out: Annotated[Path, out_option("Export folder to write (created): the graphs and manifest.json.")] = Path("model"),
    fp16: Annotated[bool, typer.Option("--fp16", help="Also write mixed-precision *.fp16.onnx graphs.")] = False,
    engine: Annotated[bool, typer.Option("--engine",
                                         help="Also build TensorRT engines (needs tensorrt + GPU).")] = False,
    trt_batch: Annotated[str, typer.Option("--trt-batch", help="Batch sizes of the TensorRT engines' optimisation "
                                           "profile, MIN:OPT:MAX.")] = "1:8:32",
    old_batch: Annotated[Optional[str], typer.Option("--batch", hidden=True, help="Old name of --trt-batch "
                                                     "(--batch is images per forward pass elsewhere).")] = None,
    opset: Annotated[int, typer.Option(help="ONNX opset, 11-20 (TensorRT 10 parses up to 20).")] = 17,
    no_verify: Annotated[bool, typer.Option("--no-verify",
                                            help="Skip the parity gates (recorded in the manifest).")] = False,
    data: Annotated[Optional[str], typer.Option(help="Parity crops from a dataset, e.g. regdb:PATH (default: "
                                                     "SynthVI rendered in memory).")] = None,
    workspace_gb: Annotated[float, typer.Option("--workspace-gb", help="TensorRT workspace limit, GiB.")] = 2.0,
    trt_weak_fp16: Annotated[bool, typer.Option("--trt-weak-fp16", help="TensorRT 10.x fallback: FP16 engines "
                                                "from the FP32 graphs with BuilderFlag.FP16.")] = False,
    triton: Annotated[Optional[Path], typer.Option("--triton", help="Also write a Triton Inference Server model "
                                                   "repository of the embedders into this folder.")] = None,
    deepstream: Annotated[Optional[Path], typer.Option("--deepstream", help="Also write DeepStream nvtracker ReID "
                                                       "graphs + configs into this folder.")] = None,
    int8: Annotated[bool, typer.Option("--int8", help="Also write INT8 Q/DQ embedder graphs (rgb/ir.int8.onnx), "
                                       "calibrated on --calib and gated against FP32.")] = False,
    calib: Annotated[Optional[str], typer.Option("--calib", help="INT8 calibration data: regdb:PATH, sysu:PATH or "
                                                 "llcm:PATH (crops from its training split).")] = None,
    calib_method: Annotated[CalibMethod, typer.Option("--calib-method", help="INT8 calibration of the activation "
                                                      "ranges.")] = CalibMethod.percentile,
    calib_crops: Annotated[int, typer.Option("--calib-crops", help="INT8 calibration crops per modality.")] = 256,
    int8_max_drop: Annotated[float, typer.Option("--int8-max-drop", help="Largest R1 / mAP drop (points) of INT8 "
                                                 "vs FP32 under the dataset's protocol.")] = 1.0,
    gate_clips: Annotated[Optional[list[Path]], typer.Option("--gate-clips", help="Clips of people the model never "
                          "saw, with ground truth (rgb.mp4, ir.mp4, gt_rgb.txt, gt_ir.txt as hicmd synth --videos "
                          "writes), or folders of them: the stream's gates are measured on their people cut at the "
                          "true boxes instead of on the --data test split (repeatable).")] = None,
    mirror: Annotated[bool, typer.Option("--mirror/--no-mirror", help="The stream embeds each crop and its mirror "
                      "image and sums them (the gates are measured so): fewer wrong matches for twice the embedder "
                      "work; --deepstream graphs mirror inside. --no-mirror for devices short of time (hicmd stream "
                      "--no-mirror turns it off per run).")] = True,
) -> None:
    """Export a checkpoint to ONNX (and FP16 ONNX, TensorRT engines) with parity gates and manifest.json."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from hicmd.data import DataError
    from hicmd.export.gates import GateClipsError, gates_lines
    from hicmd.export.int8 import CalibrationError
    from hicmd.export.pipeline import ExportOptions, run_export

    console = Console()
    profile = _trt_batch(trt_batch) if old_batch is None else _trt_batch(old_batch, "--batch")
    if not 11 <= opset <= 20:  # below 11 the model's dynamic slices have no ONNX form
        raise UserError(f"--opset {opset}: use 11..20 (17 recommended: TensorRT 10 parses up to 20)")
    if not 0 < workspace_gb < 1e6:  # NaN too
        raise UserError("--workspace-gb must be a positive number of GiB")
    for flag, folder in (("--out", out), ("--triton", triton), ("--deepstream", deepstream)):
        if folder is not None and folder.exists() and not folder.is_dir():  # before the export, not after it
            raise UserError(f"{flag} {folder} is a file: give a folder")
    if no_verify:
        console.print("[yellow]warning: --no-verify: the parity gates are skipped; the manifest records that[/]")
    options = ExportOptions(fp16=fp16, engine=engine or trt_weak_fp16, batch=profile, opset=opset,
                            verify=not no_verify, data=data, workspace_gb=workspace_gb, weak_fp16=trt_weak_fp16,
                            int8=_int8_options(int8, calib, calib_method.value, calib_crops, int8_max_drop, no_verify),
                            gate_clips=_gate_clips(gate_clips or []), mirror=mirror)
    try:
        with _StepProgress(Console(stderr=True)) as progress:
            result = run_export(checkpoint, out, options, step=progress.step)
    except CalibrationError as exc:
        raise UserError(f"--calib {calib}: {exc}") from None
    except DataError as exc:  # --data that cannot give the parity crops
        raise UserError(f"--data {data}: {exc}") from None
    except GateClipsError as exc:
        raise UserError(f"--gate-clips: {exc}") from None

    if result.gates:
        table = Table(title="parity gates (PyTorch reference)")
        for column in ("artifact", "metric", "value", "gate", "result"):
            table.add_column(column)
        for g in result.gates:
            table.add_row(g.artifact, g.metric, f"{g.value:.6g}", f"{g.op} {g.threshold:g}",
                          "[green]pass[/]" if g.passed else "[bold red]FAIL[/]")
        console.print(table)
    for file, problems in result.opcheck.items():
        for problem in problems:
            console.print(f"[red]TensorRT 10 op check, {file}: {escape(problem)}[/]")
    if result.failed or any(result.opcheck.values()):
        console.print(f"[bold red]export failed:[/] {len(result.failed)} gate(s) and "
                      f"{sum(map(len, result.opcheck.values()))} op-check problem(s); nothing was written to {out} "
                      "(a previous export there is untouched)")
        raise typer.Exit(1)
    if result.engine_problem:
        console.print(f"[bold red]no TensorRT engines:[/] {escape(result.engine_problem)}. The ONNX files and "
                      f"manifest.json are written; build the engines on the target, inside {out}:")
        for line in result.trtexec:
            console.print(line, soft_wrap=True, markup=False, highlight=False)
        raise typer.Exit(1)
    for note in result.notes:
        console.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
    if result.stream_gates.get("match"):
        for line in gates_lines(result.stream_gates):
            console.print(line, highlight=False)
    console.print(f"[green]exported[/] {len(result.files)} file(s) to {out}; manifest {result.manifest}")
    _ecosystem(out, triton, deepstream, console)


class _StepProgress:
    """Export's progress on a terminal (stderr, so it shows even when the results go to a file): the running step
    with a spinner and its time, each finished step kept with its duration. Off a terminal it prints nothing; the
    gate table and the last line are the record."""

    def __init__(self, console) -> None:  # noqa: ANN001 - rich Console
        from rich.progress import Progress, SpinnerColumn, TextColumn

        self.progress = Progress(SpinnerColumn(finished_text="[green]done[/]"), TextColumn("{task.description}"),
                                 TextColumn("{task.elapsed:.1f} s"), console=console,
                                 disable=not console.is_terminal)
        self.task = None

    def step(self, text: str) -> None:
        from rich.markup import escape

        self._finish()
        self.task = self.progress.add_task(escape(text), total=1)

    def _finish(self) -> None:
        if self.task is not None:
            self.progress.update(self.task, completed=1)
            self.progress.stop_task(self.task)  # its time stops here

    def __enter__(self) -> "_StepProgress":
        self.progress.start()
        return self

    def __exit__(self, kind, *_) -> None:  # noqa: ANN001
        if kind is None:  # a failed step stays unfinished on screen
            self._finish()
        self.progress.stop()


CLIP_FILES = ("rgb.mp4", "ir.mp4", "gt_rgb.txt", "gt_ir.txt")


def _gate_clips(paths: list[Path]) -> tuple[Path, ...]:
    """The clip folders named by --gate-clips (a clip, or a folder of clips), each with its videos and gt files."""
    from hicmd.data.synthvi_video import clip_folders

    clips: list[Path] = []
    for path in paths:
        found = clip_folders([path], marker="gt_rgb.txt")  # a user's clips need no clip.json
        if not path.is_dir() or not found:
            raise UserError(f"--gate-clips {path}: no clip with ground truth there (a folder holding "
                            f"{', '.join(CLIP_FILES)}, as hicmd synth --videos writes, or a folder of them)")
        for clip in found:
            missing = [name for name in CLIP_FILES if not (clip / name).is_file()]
            if missing:
                raise UserError(f"--gate-clips: {clip} lacks {', '.join(missing)}")
        clips += found
    return tuple(clips)


def _int8_options(int8: bool, calib: str | None, method: str, crops: int, max_drop: float, no_verify: bool):
    """Int8Options for --int8, or None; one clear line for each flag that cannot work."""
    if not int8:
        if calib is not None:
            raise UserError("--calib is INT8 calibration data: add --int8 (or drop --calib)")
        return None
    if calib is None:
        raise UserError("--int8 needs calibration data: --calib regdb:PATH (or sysu:/llcm:), crops are drawn from "
                        "its training split")
    if no_verify:
        raise UserError("--int8 with --no-verify: an INT8 graph is only written with its accuracy gates; drop "
                        "--no-verify")
    from hicmd.export.int8 import Int8Options

    return Int8Options(calib=calib, method=method, crops=crops, max_drop=max_drop)


def _ecosystem(out: Path, triton: Path | None, deepstream: Path | None, console) -> None:  # noqa: ANN001
    """The Triton repository and DeepStream files, made from the export folder just written."""
    if triton is not None:
        from hicmd.export.triton import write_triton_repository

        names = write_triton_repository(out, triton)
        console.print(f"[green]Triton repository[/] {triton}: {', '.join(names)}")
    if deepstream is not None:
        from hicmd.export.deepstream import write_deepstream

        files = write_deepstream(out, deepstream)
        console.print(f"[green]DeepStream ReID[/] {deepstream}: {', '.join(p.name for p in files)}")
