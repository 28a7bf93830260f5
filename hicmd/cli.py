"""The `hicmd` command line. Each verb lives in hicmd/commands/<verb>.py and imports its heavy
dependencies (torch, onnxruntime, OpenCV) inside the command body, so `hicmd --help` stays fast."""

from __future__ import annotations

import sys

import typer

from hicmd.commands import bench, convert, demo, evaluate, export, info, stream, synth, train, translate
from hicmd.errors import HicmdError

app = typer.Typer(
    name="hicmd",
    help="Hi-CMD visible-infrared person re-identification: train, evaluate, export, stream.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for _module in (train, evaluate, export, stream, translate, bench, demo, synth, info, convert):
    app.command(_module.NAME, help=_module.command.__doc__)(_module.command)


def main() -> None:
    """Console entry point: user mistakes become one red line and exit code 2, never a traceback.
    Click's standalone mode handles usage errors, `typer.Exit` codes and Ctrl-C itself."""
    try:
        app()
    except HicmdError as exc:  # every deliberate error: a config, data, checkpoint, manifest, source, ...
        typer.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(2)
    except OSError as exc:  # a path the user gave that cannot be read or written
        where = f": {exc.filename}" if exc.filename else ""
        typer.secho(f"error: {exc.strerror or exc}{where}", fg="red", err=True)
        sys.exit(2)
