"""The `hicmd` command line. Each verb lives in hicmd/commands/<verb>.py and imports its heavy
dependencies (torch, onnxruntime, OpenCV) inside the command body, so `hicmd --help` stays fast."""

from __future__ import annotations

import functools
import sys
from typing import Any, Callable

import typer
from rich.markup import escape

from hicmd import __version__
from hicmd.commands import (bench, calibrate, check, convert, demo, evaluate, export, info, score, stream, synth,
                            train, translate)
from hicmd.errors import HicmdError, UserError
from hicmd.extras import VERB_NEEDS, install_hint, missing_modules

try:  # Typer >= 0.2x vendors Click; older Typer uses the click package
    from typer._click.exceptions import ClickException
except ImportError:  # pragma: no cover - depends on the installed Typer
    from click.exceptions import ClickException

app = typer.Typer(
    name="hicmd",
    help="Hi-CMD visible-infrared person re-identification: train, evaluate, export, stream.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)



def _version(value: bool) -> None:
    if value:
        typer.echo(f"hicmd {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print hicmd's version and exit.")) -> None:
    """Hi-CMD visible-infrared person re-identification: train, evaluate, export, stream."""


def _needs(verb: str, command: Callable[..., Any]) -> Callable[..., Any]:
    """Run `command` only when the modules its verb needs are installed (an edge install has no torch)."""
    modules = VERB_NEEDS.get(verb, ())

    @functools.wraps(command)  # Typer reads the wrapped signature
    def checked(*args: Any, **kwargs: Any) -> Any:
        missing = missing_modules(modules)
        if missing:
            raise UserError(install_hint(missing, f"hicmd {verb}"))
        return command(*args, **kwargs)

    return checked if modules else command


def _examples(lines: tuple[str, ...]) -> str:
    """The --help epilog: one example per line (escaped: Rich would read 'hicmd[train]' as markup)."""
    return "Examples:\n" + "\n".join(f"  {escape(line)}" for line in lines)


for _module in (train, evaluate, export, stream, translate, bench, demo, synth, info, convert, check, score,
                calibrate):
    app.command(_module.NAME, help=_module.command.__doc__, epilog=_examples(_module.EXAMPLES))(
        _needs(_module.NAME, _module.command))


def _usage_line(exc: ClickException) -> str:
    """A usage error (a wrong choice, a missing option, a typo in a flag) as one line that says where to look."""
    message = " ".join(exc.format_message().replace("Value error, ", "").split()).rstrip(".")  # Typer 0.2x's prefix
    ctx = getattr(exc, "ctx", None)
    return f"{message} (see: {ctx.command_path} --help)" if ctx is not None else message


def _error(message: str) -> None:
    """The one red line a mistake gets; credentials redacted whatever the option (a camera URL pasted where a path
    was expected is echoed back in 'not found')."""
    from hicmd.runtime.redact import redact

    typer.secho(f"error: {redact(message)}", fg="red", err=True)


def main() -> None:
    """Console entry point: user mistakes become one red line and exit code 2, never a traceback.
    Outside Click's standalone mode a `typer.Exit` or Ctrl-C comes back as the exit code and usage errors are
    raised, so they get the same one line as every other mistake instead of Rich's boxed usage text."""
    try:
        code = app(standalone_mode=False)
    except ClickException as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare `hicmd`: the help is the answer
            exc.show()
        else:
            _error(_usage_line(exc))
        sys.exit(exc.exit_code)
    except typer.Abort:  # end of input at a prompt
        typer.secho("Aborted!", err=True)
        sys.exit(1)
    except HicmdError as exc:  # every deliberate error: a config, data, checkpoint, manifest, source, ...
        _error(str(exc))
        sys.exit(2)
    except ModuleNotFoundError as exc:  # an optional dependency this run needs (e.g. --backend torch on an edge box)
        hint = install_hint(exc.name or "", "this command")
        if hint is None:
            raise
        _error(hint)
        sys.exit(2)
    except OSError as exc:  # a path the user gave that cannot be read or written
        where = f": {exc.filename}" if exc.filename else ""
        _error(f"{exc.strerror or exc}{where}")
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)
