"""`hicmd score`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from hicmd.commands._options import out_option
from hicmd.errors import UserError

NAME = "score"
EXAMPLES = ("hicmd score --run out/ --gt data/synthvi/videos/clip01",
            "hicmd score --run out/ --gt data/synthvi/videos/clip01 -o out/score.json")


def command(
    run: Path = typer.Option(..., "--run", help="Folder of a stream run: events.jsonl and tracks/ (hicmd stream "
                             "--events RUN/events.jsonl --save-tracks RUN/tracks)."),
    gt: Path = typer.Option(..., "--gt", help="Clip folder with gt_rgb.txt / gt_ir.txt (and clip.json with the true "
                            "homography, for SynthVI clips)."),
    json_out: Annotated[Optional[Path], out_option("Also write the scores to this JSON file.")] = None,
    old_json: Optional[Path] = typer.Option(None, "--json", hidden=True, help="Old name of --out (check's --json is "
                                            "a switch)."),
    min_overlap_s: float = typer.Option(2.0, help="A same-person RGB/IR track pair counts for recall when both "
                                        "were seen together this long."),
) -> None:
    """Score a stream run against ground truth: match precision/recall, cross-camera IDF1 and HOTA, calibration."""
    from rich.console import Console
    from rich.table import Table

    from hicmd.runtime.atomic import clashing_outputs
    from hicmd.runtime.scorecard import score_card

    json_out = json_out if json_out is not None else old_json
    if not 0 <= min_overlap_s < 1e9:  # NaN too
        raise UserError(f"--min-overlap-s {min_overlap_s:g}: give seconds, 0 or more (default 2)")
    read = [*run.glob("events.jsonl"), *run.glob("tracks/*"), *gt.glob("*")]  # what scoring reads, or may
    problem = clashing_outputs({"--out": json_out}, {f"{'--run' if path.is_relative_to(run) else '--gt'} folder's "
                                                    f"{path.name}": path for path in read})
    if problem:
        raise UserError(problem)
    card = score_card(run, gt, min_overlap_s)
    table = Table(title=f"{run} vs {gt}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in card.items():
        if key in ("run", "clip", "match_by_cue", "match_wrong", "match_people_matched"):
            continue
        table.add_row(key, "-" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value))
    for cue, tally in card.get("match_by_cue", {}).items():  # how far each cue that let pairs match can be trusted
        table.add_row(f"match_correct by {cue}", f"{tally['correct']}/{tally['matches']}")
    console = Console()
    console.print(table)
    if card.get("match_wrong"):  # where tuning starts: which cue let each wrong pair in, and when
        wrong = Table(title="wrong matches")
        for column in ("t (s)", "cue", "RGB track (person)", "IR track (person)", "after the fit in use (s)"):
            wrong.add_column(column, justify="right")
        dash = lambda value: "-" if value is None else str(value)  # noqa: E731
        for w in card["match_wrong"]:
            wrong.add_row(dash(w["t"]), dash(w["cue"]), f"{w['rgb_track']} ({dash(w['rgb_person'])})",
                          f"{w['ir_track']} ({dash(w['ir_person'])})", dash(w["after_fit_s"]))
        console.print(wrong)
    if json_out is not None:
        from hicmd.runtime.atomic import write_atomically

        write_atomically(json_out, json.dumps(card, indent=1) + "\n")
