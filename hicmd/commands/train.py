"""`hicmd train`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, List, Optional

import typer

from hicmd.choices import Amp
from hicmd.commands._options import DEVICE_HELP, out_option, torch_device
from hicmd.errors import UserError

NAME = "train"
EXAMPLES = ("hicmd train -c tiny --data regdb:data/synthvi -o runs/tiny",
            "torchrun --nproc_per_node 4 -m hicmd train -c paper --data sysu:/data/SYSU-MM01 -o runs/sysu")


def command(
    data: str = typer.Option(..., "--data", help="regdb:PATH[:trial], sysu:PATH or llcm:PATH (SynthVI: regdb:PATH)."),
    out: Annotated[Path, out_option("Run folder: log.csv, results.png, samples/, checkpoints/, last.pt.")] = ...,
    config: str = typer.Option("paper", "--config", "-c", help="Preset (paper, tiny, edge) or a .toml/.yaml/.json "
                               "file."),
    iters: Optional[int] = typer.Option(None, "--iters", min=1, help="Total iterations (default: train.iters)."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Checkpoint to continue from, bit-exactly."),
    overrides: List[str] = typer.Option([], "--set", help="Config override section.key=value (repeatable)."),
    device: Optional[str] = typer.Option(None, "--device", parser=torch_device, metavar="[auto|cpu|cuda|cuda:N]",
                                         help=f"{DEVICE_HELP} Default: the config's train.device (auto)."),
    amp: Optional[Amp] = typer.Option(None, "--amp", help="Mixed precision (default: the config's train.amp)."),
    pretrained: Optional[str] = typer.Option(
        None, "--pretrained", help="ImageNet weights for the attribute encoders and H: 'imagenet-lite' (packaged "
                                   "EfficientNet-Lite0, hicmd\\[pretrained]; sets model.pretrained), 'none', a local "
                                   "ResNet .pth file, or 'torchvision' to download them."),
    evaluate: bool = typer.Option(True, "--eval/--no-eval", help="Evaluate on the test split at the end."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show the progress bar."),
) -> None:
    """Train Hi-CMD (ID-PIG + HFL) on RegDB, SYSU-MM01, LLCM or SynthVI. Multi-process:
    torchrun --nproc_per_node N -m hicmd train ..."""
    import logging

    from hicmd.config import PRETRAINED, load_config

    extra = ([f"train.device={device}"] if device is not None else []) + \
        ([f"train.amp={amp.value}"] if amp is not None else [])
    if pretrained in PRETRAINED:  # packaged weights: a model setting, recorded in the run's config
        extra.append(f"model.pretrained={pretrained}")
        pretrained = None
    cfg = load_config(config, [*overrides, *extra])
    if cfg.train.amp not in ("none", "bf16", "fp16"):
        raise UserError(f"--amp {cfg.train.amp!r} must be none, bf16 or fp16")
    if resume is not None and not resume.is_file():
        raise UserError(f"--resume {resume} not found; pass a .pt file from a run folder (e.g. RUN/last.pt)")
    if pretrained not in (None, "torchvision") and not Path(pretrained).is_file():
        raise UserError(f"--pretrained {pretrained} not found; pass imagenet-lite, none, a torchvision ResNet .pth "
                        "file or 'torchvision'")
    if cfg.model.pretrained != "none" and resume is None:
        from hicmd.pretrained import packaged_weights_path

        packaged_weights_path(cfg.model.pretrained)  # package installed and file intact, before any data is read
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a folder")
    if resume is None and (out / "last.pt").exists():  # a new run there would replace that model and mix the logs
        raise UserError(f"--out {out} already holds a run ({out / 'last.pt'}): continue it with --resume "
                        f"{out / 'last.pt'}, or train into a new folder")

    from rich.console import Console
    from rich.logging import RichHandler

    from hicmd.device import resolve_device
    from hicmd.train.loop import train

    resolve_device(cfg.train.device)
    logging.basicConfig(level=logging.INFO, format="%(message)s", handlers=[RichHandler(show_path=False)])
    console = Console()
    summary = train(cfg, data, out, iters=iters, resume=resume, pretrained=pretrained, evaluate=evaluate,
                    show_progress=progress)
    if summary.rank != 0:  # torchrun: rank 0 reports
        return
    console.print(f"trained {summary.trained} iterations in {summary.seconds:.0f} s "
                  f"({summary.it_per_s} it/s), {summary.skipped} non-finite steps skipped, "
                  f"{summary.corrupt} unreadable images; checkpoint {summary.checkpoint}")
    if summary.checkpoint_iteration != summary.iterations:  # never hide that the last steps were not kept
        held = f"iteration {summary.checkpoint_iteration}" if summary.checkpoint_iteration else "nothing"
        console.print(f"warning: {summary.checkpoint} holds {held}, not {summary.iterations}: the steps after it "
                      "were non-finite (the warnings above), so their weights were not saved", style="yellow")
    if summary.eval:
        from hicmd.evaluation.report import print_results

        print_results(summary.eval, console)
