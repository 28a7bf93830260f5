"""`hicmd synth`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from hicmd.choices import Rig
from hicmd.commands._options import out_option
from hicmd.errors import UserError

NAME = "synth"
EXAMPLES = ("hicmd synth -o data/synthvi --ids 200",
            "hicmd synth -o data/synthvi --ids 200 --videos --rig bispectrum --footage 60   # + clips, footage crops")


def _size(text: str) -> tuple[int, int]:
    height, sep, width = text.lower().partition("x")
    if not sep or not height.isdigit() or not width.isdigit() or not 16 <= min(int(height), int(width)) or \
            max(int(height), int(width)) > 1024:  # a person crop; 100000x100000 ran the machine out of memory
        raise UserError(f"--size {text!r} must be HEIGHTxWIDTH, each 16 to 1024, e.g. 128x64")
    return int(height), int(width)


def command(
    out: Annotated[Path, out_option("Folder to write (RegDB layout: Visible/, Thermal/, idx/).")],
    ids: int = typer.Option(200, "--ids", help="Number of identities; half train, half test (>= 2)."),
    seed: int = typer.Option(0, "--seed", min=0, help="Universe seed: same seed, same bytes."),
    size: str = typer.Option("128x64", "--size", help="Image size HEIGHTxWIDTH."),
    per_id: int = typer.Option(10, "--per-id", help="Images per identity and modality (RegDB has 10)."),
    trials: int = typer.Option(1, "--trials", help="Number of train/test splits (idx/*_{1..trials}.txt)."),
    videos: bool = typer.Option(False, "--videos", help="Also write paired RGB/IR clips of test identities."),
    clips: Optional[int] = typer.Option(None, "--clips", help="Number of video clips (with --videos; default 2)."),
    frames: Optional[int] = typer.Option(None, "--frames", help="RGB frames per clip (with --videos; default 120)."),
    y16: bool = typer.Option(False, "--y16", help="Also write 16-bit centi-Kelvin IR frames (with --videos)."),
    rig: Rig = typer.Option(Rig.bispectrum, "--rig", help="Camera rig of the clips: a bi-spectrum camera (RGB and "
                            "thermal sensors side by side) or two separately mounted cameras (partial overlap, "
                            "and one more person per clip whom only one of them sees)."),
    footage: int = typer.Option(0, "--footage", help="Also walk the training identities through this many clips "
                                "of each rig and add their people, cut at the true boxes every 4th frame, to the "
                                "training list (footage/): a model that has seen people as the stream sees them."),
) -> None:
    """Write SynthVI, the procedural visible-infrared dataset, in the RegDB layout."""
    import time

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from hicmd.data.footage import FOOTAGE_SUMMARY, add_footage
    from hicmd.data.synthvi_camera import RIGS
    from hicmd.data.synthvi_write import split_ids, write_regdb

    height, width = _size(size)
    if ids < 2:
        raise UserError(f"--ids must be at least 2 (one train and one test identity), got {ids}")
    if per_id < 1 or trials < 1:
        raise UserError("--per-id and --trials must be at least 1")
    if not videos and (clips is not None or frames is not None or y16):  # they would be ignored
        raise UserError("--clips, --frames and --y16 describe the video clips: add --videos")
    clips, frames = 2 if clips is None else clips, 120 if frames is None else frames
    if videos and (clips < 1 or frames < 10):
        raise UserError("--clips must be >= 1 and --frames >= 10")
    if videos and ids - ids // 2 < 3:
        raise UserError(f"--videos walks 3-4 test identities per clip; use --ids 6 or more (got {ids})")
    if footage < 0 or (footage and (trials > 1 or ids // 2 < 3)):
        raise UserError("--footage needs a count >= 0, --trials 1 (the crops join trial 1's training list) and "
                        f"--ids 6 or more (3+ training identities walk in each clip); got {footage}, {trials}, {ids}")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create --out {out}: {exc.strerror}") from None

    console = Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    # footage.json says the crops are in the training lists, which write_regdb is about to rewrite without them
    (out / FOOTAGE_SUMMARY).unlink(missing_ok=True)
    start = time.perf_counter()
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("identities", total=ids)
        write_regdb(out, ids, per_id, seed, trials, (height, width), lambda k: progress.advance(task, k))
    elapsed = time.perf_counter() - start
    images = ids * per_id * 2
    summary = f"SynthVI: {ids} ids x {per_id} RGB + {per_id} IR = {images} images at {height}x{width} in {out}"
    summary += f" ({elapsed:.1f} s, {images / elapsed:.0f} images/s)"
    if videos:
        from hicmd.data.synthvi_video import write_videos

        start = time.perf_counter()
        test_ids = split_ids(ids, seed, 1)[1]
        with Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task("video clips", total=clips)
            written = write_videos(out / "videos", test_ids, seed, clips=clips, frames=frames, y16=y16,
                                   progress=lambda k: progress.advance(task, k), rig=rig.value)
        summary += f"; {len(written)} clips x {frames} frames in {out / 'videos'} ({time.perf_counter() - start:.1f} s)"
    if footage:
        start = time.perf_counter()
        with Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task("footage clips", total=len(RIGS) * footage)
            crops = add_footage(out, footage, progress=lambda k: progress.advance(task, k))
        summary += (f"; {crops['rgb']} RGB + {crops['ir']} IR footage crops of the training identities in "
                    f"{out / 'footage'} ({time.perf_counter() - start:.1f} s)")
    typer.echo(summary)
