"""`hicmd convert-original`: the authors' released checkpoint -> a hicmd checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from hicmd.errors import UserError

NAME = "convert-original"
EXAMPLES = ("hicmd convert-original --gen gen_00070000.pt --id id_00070000.pt -o regdb.pt",
            "hicmd convert-original --dir RegDB_pretrained/checkpoints --opts RegDB_pretrained/opts.yaml -o regdb.pt")


def command(
    out: Path = typer.Option(..., "--out", "-o", help="hicmd checkpoint to write (.pt)."),
    gen: Optional[Path] = typer.Option(None, "--gen", help="The authors' gen_XXXXXXX.pt (encoders + decoder)."),
    id_: Optional[Path] = typer.Option(None, "--id", help="The authors' id_XXXXXXX.pt (H, alpha, classifier)."),
    dis: Optional[Path] = typer.Option(None, "--dis", help="The authors' dis_XXXXXXX.pt (optional, training only)."),
    opts: Optional[Path] = typer.Option(None, "--opts", help="The run's opts.yaml (optional cross-check)."),
    directory: Optional[Path] = typer.Option(
        None, "--dir", help="Instead of --gen/--id: the authors' checkpoints/ folder; files are picked by iteration."),
    iteration: Optional[int] = typer.Option(
        None, "--iteration", min=0, help="With --dir: which snapshot (default: the latest with gen_ and id_)."),
) -> None:
    """Convert the authors' released checkpoint (gen_*.pt, id_*.pt) into a hicmd checkpoint."""
    if directory is not None and (gen or id_ or dis):
        raise UserError("use either --dir (with --iteration) or --gen/--id/--dis, not both")
    if directory is None and (gen is None or id_ is None):
        raise UserError("pass --gen gen_XXXXXXX.pt and --id id_XXXXXXX.pt, or --dir checkpoints/ [--iteration N]")
    if iteration is not None and directory is None:
        raise UserError("--iteration needs --dir")
    if opts is not None and not opts.is_file():
        raise UserError(f"--opts {opts} not found; it is opts.yaml next to the authors' checkpoints/ folder")

    from rich.console import Console

    from hicmd.authors_checkpoint import OriginalFiles, convert_original, find_original_files, save_converted

    console = Console()
    try:
        if directory is not None:
            files = find_original_files(directory, iteration)
            if opts is not None:
                files = OriginalFiles(files.gen, files.id, files.dis, opts)
        else:
            files = OriginalFiles(gen, id_, dis, opts)  # type: ignore[arg-type]
        if out.resolve() in {p.resolve() for p in (files.gen, files.id, files.dis) if p is not None}:
            raise UserError(f"--out {out} would overwrite one of the authors' files; choose another path")
        with console.status("reading the authors' checkpoint and mapping its weights"):
            conversion = convert_original(files)
        with console.status(f"writing {out}"):
            save_converted(conversion, out)
    except OSError as exc:
        raise UserError(f"cannot write {out}: {exc.strerror or exc}") from None

    used = ", ".join(p.name for p in (files.gen, files.id, files.dis, files.opts) if p is not None)
    alpha = float(conversion.model.hfl.alpha.detach())
    console.print(f"converted {used}: {conversion.copied} tensors, {conversion.num_classes} classes, "
                  f"iteration {conversion.iteration}, alpha {alpha:.4f}")
    for note in conversion.notes:
        console.print(f"[yellow]note:[/] {note}")
    console.print(f"[green]wrote {out}[/] (paper config); use it wherever a hicmd checkpoint is expected "
                  "(eval, export, stream)")
