"""`hicmd eval`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from hicmd.errors import UserError

NAME = "eval"


def command(
    checkpoint: Path = typer.Argument(..., help="hicmd checkpoint (.pt) to evaluate."),
    data: str = typer.Option(..., "--data", help="regdb:PATH[:trial], sysu:PATH or llcm:PATH (SynthVI: regdb:PATH)."),
    trials: Optional[str] = typer.Option(
        None, help="Trial N, a range 1-10 or a list 1,3,5. Default: RegDB the spec's split (one model per split), "
                   "SYSU/LLCM gallery draws 1-10."),
    mode: str = typer.Option("all", help="SYSU search mode: all, indoor or both."),
    shots: int = typer.Option(1, help="SYSU gallery images per (person, camera): 1 or 10 (10 needs --perm)."),
    perm: Optional[Path] = typer.Option(
        None, help="Official SYSU rand_perm_cam.mat; without it, AGW seeded draws (random.seed(trial-1))."),
    direction: str = typer.Option("both", help="v2t (visible query), t2v (IR query) or both; SYSU is t2v only."),
    flip: bool = typer.Option(False, "--flip", help="Average the features of each image and its mirror."),
    per_trial: bool = typer.Option(False, "--per-trial", help="Also show one row per trial (metrics.json always "
                                   "has them, with the std over trials)."),
    out: Optional[Path] = typer.Option(None, help="Folder for metrics.json and cmc.png. Default: eval_DATASET/ "
                                                  "next to the checkpoint."),
    batch: int = typer.Option(64, min=1, help="Images per forward pass."),
    device: str = typer.Option("cpu", help="cpu, cuda or cuda:N."),
) -> None:
    """Evaluate a checkpoint: CMC, mAP, mINP under the RegDB / SYSU-MM01 / LLCM protocols."""
    if not checkpoint.is_file():
        raise UserError(f"checkpoint {checkpoint} not found; pass the .pt file 'hicmd train' wrote")
    if mode not in ("all", "indoor", "both"):
        raise UserError(f"--mode {mode!r} must be all, indoor or both")
    if direction not in ("v2t", "t2v", "both"):
        raise UserError(f"--direction {direction!r} must be v2t, t2v or both")
    if perm is not None and not perm.is_file():
        raise UserError(f"--perm {perm} not found; it is evaluation/data_split/rand_perm_cam.mat of SYSU-MM01")

    import torch

    from hicmd.evaluation import report
    from hicmd.evaluation.runner import evaluate, parse_trials
    from hicmd.train.checkpoint import CheckpointError, load_model

    if device != "cpu" and not (device == "cuda" or device.startswith("cuda:") and device[5:].isdigit()):
        raise UserError(f"--device {device!r}: use cpu, cuda or cuda:N")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {device}: no CUDA device is available here; use --device cpu")
    try:
        model, cfg = load_model(checkpoint, device)
    except CheckpointError as exc:
        raise UserError(str(exc)) from None

    results = evaluate(
        model, cfg, data,
        trials=parse_trials(trials) if trials else None,
        directions=None if direction == "both" else (direction,),  # None: every direction the protocol has
        modes=("all", "indoor") if mode == "both" else (mode,),
        shots=shots, perm=perm, flip=flip, batch_size=batch, device=device,
    )
    results["checkpoint"] = str(checkpoint)

    out = out or checkpoint.parent / f"eval_{results['dataset']}"
    report.print_results(results, per_trial=per_trial)
    json_path = report.write_json(results, out / "metrics.json")
    png_path = report.plot_cmc(results, out / "cmc.png")
    typer.echo(f"wrote {json_path} and {png_path}")
