"""`hicmd eval`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from hicmd.choices import Direction, SearchMode
from hicmd.commands._options import CHECKPOINT_HELP, TorchDeviceOption, out_option
from hicmd.errors import UserError

NAME = "eval"
EXAMPLES = ("hicmd eval runs/tiny/last.pt --data regdb:data/synthvi --direction both",
            "hicmd eval runs/regdb{1..10}/last.pt --data regdb:/data/RegDB     # one model per split, mean +- std")


def command(
    checkpoints: list[Path] = typer.Argument(..., metavar="CHECKPOINT", help=f"{CHECKPOINT_HELP} RegDB's "
                                             "10-split protocol: one per split (runs/regdb{1..10}/last.pt), mean "
                                             "and std."),
    data: str = typer.Option(..., "--data", help="regdb:PATH[:trial], sysu:PATH or llcm:PATH (SynthVI: regdb:PATH)."),
    trials: Optional[str] = typer.Option(
        None, help="Trial N, a range 1-10 or a list 1,3,5. Default: RegDB the spec's split (one model per split), "
                   "SYSU/LLCM gallery draws 1-10."),
    mode: SearchMode = typer.Option(SearchMode.all, help="SYSU search mode (both: all and indoor)."),
    shots: int = typer.Option(1, help="SYSU gallery images per (person, camera): 1 or 10 (10 needs --perm)."),
    perm: Optional[Path] = typer.Option(
        None, help="Official SYSU rand_perm_cam.mat; without it, AGW seeded draws (random.seed(trial-1))."),
    direction: Direction = typer.Option(Direction.both, help="Query direction: v2t (visible query), t2v (IR query) "
                                        "or both; SYSU is t2v only."),
    flip: bool = typer.Option(False, "--flip", help="Average the features of each image and its mirror."),
    per_trial: bool = typer.Option(False, "--per-trial", help="Also show one row per trial (metrics.json always "
                                   "has them, with the std over trials)."),
    out: Annotated[Optional[Path], out_option("Folder for metrics.json and cmc.png. Default: eval_DATASET/ next "
                                              "to the checkpoint.")] = None,
    batch: int = typer.Option(64, min=1, help="Images per forward pass."),
    device: TorchDeviceOption = "auto",
) -> None:
    """Evaluate a checkpoint: CMC, mAP, mINP under the RegDB / SYSU-MM01 / LLCM protocols."""
    for checkpoint in checkpoints:
        if not checkpoint.is_file():
            raise UserError(f"checkpoint {checkpoint} not found; pass the .pt file 'hicmd train' wrote")
    checkpoint = checkpoints[0]
    if perm is not None and not perm.is_file():
        raise UserError(f"--perm {perm} not found; it is evaluation/data_split/rand_perm_cam.mat of SYSU-MM01")

    import torch

    from hicmd.evaluation import report
    from hicmd.evaluation.runner import evaluate, parse_trials
    from hicmd.checkpoint import load_model

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {device}: no CUDA device is available here; use --device cpu")

    if out is not None and out.exists() and not out.is_dir():  # said now, not after minutes of evaluation
        raise UserError(f"--out {out} is a file: give a folder for metrics.json and cmc.png")

    def evaluate_one(path: Path, split_trials: list[int] | None) -> dict:
        model, cfg = load_model(path, device)
        return evaluate(
            model, cfg, data, trials=split_trials,
            directions=None if direction is Direction.both else (direction.value,),  # None: all the protocol has
            modes=("all", "indoor") if mode is SearchMode.both else (mode.value,),
            shots=shots, perm=perm, flip=flip, batch_size=batch, device=device,
        )

    if len(checkpoints) == 1:
        results = evaluate_one(checkpoint, parse_trials(trials) if trials else None)
        results["checkpoint"] = str(checkpoint)
        _warn_other_splits(checkpoint, results)
    else:
        from hicmd.evaluation.splits import evaluate_splits

        if not data.lower().startswith("regdb:"):
            raise UserError("several checkpoints are RegDB's 10-split protocol (one model per split): use --data "
                            "regdb:PATH")
        splits = parse_trials(trials) if trials else list(range(1, len(checkpoints) + 1))
        if len(splits) != len(checkpoints):
            raise UserError(f"{len(checkpoints)} checkpoints but {len(splits)} splits in --trials: give one split "
                            "per checkpoint, in order")
        results = evaluate_splits(checkpoints, data, splits, lambda path, t: evaluate_one(path, [t]),
                                  lambda text: typer.secho(f"warning: {text}", fg="yellow", err=True))

    out = out or checkpoint.parent / f"eval_{results['dataset']}"
    report.print_results(results, per_trial=per_trial)
    json_path = report.write_json(results, out / "metrics.json")
    png_path = report.plot_cmc(results, out / "cmc.png")
    typer.echo(f"wrote {json_path} and {png_path}")


def _warn_other_splits(checkpoint: Path, results: dict) -> None:
    """One RegDB checkpoint scored on splits other than its own: its training people are in those test sets."""
    from hicmd.evaluation.splits import trained_trial
    from hicmd.checkpoint import load_checkpoint

    if results["dataset"] != "regdb":
        return
    trained = trained_trial(load_checkpoint(checkpoint).get("dataset"))
    evaluated = sorted({t for row in results["settings"].values() for t in row["trials"]})
    if trained is not None and evaluated != [trained]:
        others = ", ".join(str(t) for t in evaluated if t != trained)
        typer.secho(f"warning: {checkpoint} was trained on RegDB split {trained} and is also scored on split(s) "
                    f"{others}, whose test people it trained on; papers report one model per split "
                    "(hicmd eval runs/regdb{1..10}/last.pt --data regdb:PATH)", fg="yellow", err=True)
