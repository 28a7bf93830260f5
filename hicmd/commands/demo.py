"""`hicmd demo`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from hicmd.commands._options import out_option
from hicmd.errors import UserError

NAME = "demo"
EXAMPLES = ("hicmd demo -o hicmd-demo", "hicmd demo -o hicmd-demo --fresh --no-bench   # redo every step")


def command(
    out: Annotated[Path, out_option("Folder for everything the demo makes.")] = Path("hicmd-demo"),
    fresh: bool = typer.Option(False, "--fresh", help="Redo every step instead of reusing what exists."),
    ids: int = typer.Option(200, "--ids", help="SynthVI identities (half train, half test)."),
    iters: Optional[int] = typer.Option(None, "--iters", min=1, help="Training iterations with tiny's recipe "
                                        "(default: the demo's, 4,000 iterations of tiny's shared warm-up)."),
    footage: int = typer.Option(60, "--footage", min=0, help="Clips per rig of the training people cut into "
                                "training crops (0: stills only)."),
    bench: bool = typer.Option(True, "--bench/--no-bench", help="Finish with a short latency benchmark."),
) -> None:
    """The whole job on SynthVI: data, train, evaluate, export, stream, benchmark, report."""
    from hicmd.walkthrough import DemoPlan, run_demo

    if out.exists() and not out.is_dir():  # --fresh would try to empty it as a folder
        raise UserError(f"--out {out} exists and is not a folder; give a folder for the demo's files")
    run_demo(DemoPlan(out=out, ids=ids, iters=iters, footage=footage, bench=bench), fresh=fresh)
