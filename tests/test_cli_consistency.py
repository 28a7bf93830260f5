"""The CLI says the same thing the same way in every verb (issue 15 §4, issue 16 §5): fixed choices are Enums that
--help lists and a wrong one is one line with exit 2; a flag has one meaning, one short form and one default;
every --help ends with examples that parse."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import typing
from enum import Enum
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from hicmd import choices
from hicmd.cli import app, main
from hicmd.commands import _options

GROUP = typer.main.get_command(app)
VERBS = sorted(GROUP.commands)
WIDE = {"COLUMNS": "400"}  # no wrapping: a metavar or an example stays on one line


def _options_of(verb: str) -> dict[str, typing.Any]:
    """Visible options of a verb by long name (--x)."""
    return {next(o for o in p.opts if o.startswith("--")): p for p in GROUP.commands[verb].params
            if p.param_type_name == "option" and not p.hidden}


def _enum_options() -> list[tuple[str, str, type[Enum]]]:
    """(verb, --flag, Enum) for every option of every verb whose type is one of hicmd.choices' Enums."""
    from hicmd import cli

    found = []
    for verb in VERBS:
        module = next(m for m in vars(cli).values() if getattr(m, "NAME", None) == verb and hasattr(m, "command"))
        hints = typing.get_type_hints(module.command)
        for name, hint in hints.items():
            enum = next((a for a in (hint, *typing.get_args(hint)) if isinstance(a, type) and issubclass(a, Enum)),
                        None)
            if enum is not None:
                param = next(p for p in GROUP.commands[verb].params if p.name == name)
                found.append((verb, next(o for o in param.opts if o.startswith("--")), enum))
    return found


ENUM_OPTIONS = _enum_options()


def _help(verb: str) -> str:
    result = CliRunner().invoke(app, [verb, "--help"], env=WIDE)
    assert result.exit_code == 0, result.output
    return result.output


def test_the_choices_are_the_values_the_code_accepts():
    from hicmd.config import AMP_MODES
    from hicmd.data.synthvi_camera import RIGS
    from hicmd.runtime.backends import BACKENDS, DEVICES, PRECISIONS
    from hicmd.runtime.fusion import CUES
    from hicmd.runtime.translate import SWAPS

    def values(enum: type[Enum]) -> tuple[str, ...]:
        return tuple(member.value for member in enum)

    assert choices.MODALITIES == ("rgb", "ir") == values(choices.ModalityChoice)
    assert values(choices.Backend) == BACKENDS and values(choices.Device) == DEVICES
    assert values(choices.Precision) == PRECISIONS and values(choices.Amp) == AMP_MODES
    assert set(values(choices.Swap)) == set(SWAPS)
    assert values(choices.Cues) == CUES and values(choices.Rig) == RIGS
    if _importable("onnx"):  # export.int8 needs onnx (the export extra)
        from hicmd.export.int8 import METHODS

        assert values(choices.CalibMethod) == METHODS
    assert len(ENUM_OPTIONS) >= 14, ENUM_OPTIONS  # the Enums are used, not only defined


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def test_choices_and_commands_import_without_torch():
    code = ("import sys, hicmd.choices, hicmd.cli; from hicmd.commands import _options; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


@pytest.mark.parametrize("verb, flag, enum", ENUM_OPTIONS, ids=[f"{v} {f}" for v, f, _ in ENUM_OPTIONS])
def test_help_lists_the_choices_and_a_wrong_one_is_one_line(verb, flag, enum, monkeypatch, capsys):
    listed = "|".join(member.value for member in enum)
    assert any(flag in line and listed in line for line in _help(verb).splitlines()), (verb, flag, listed)
    monkeypatch.setattr(sys, "argv", ["hicmd", verb, flag, "bogus"])
    with pytest.raises(SystemExit) as stop:
        main()
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert stop.value.code == 2
    assert len(lines) == 1 and lines[0].startswith("error: ") and flag in lines[0] and "'bogus'" in lines[0], lines
    assert all(member.value in lines[0] for member in enum), lines[0]


def test_a_wrong_choice_from_the_console_is_one_line():
    run = subprocess.run([sys.executable, "-m", "hicmd", "eval", "x.pt", "--data", "regdb:x", "--device", "tpu"],
                         capture_output=True, text=True, timeout=60)
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert len(lines) == 1 and "--device" in lines[0] and "cuda:N" in lines[0], run.stderr
    good = subprocess.run([sys.executable, "-m", "hicmd", "check", "--json"], capture_output=True, text=True,
                          timeout=60)
    assert good.returncode == 0 and good.stdout.startswith("{"), good.stderr  # a verb that works exits 0


@pytest.mark.parametrize("verb", VERBS)
def test_every_help_ends_with_examples_that_parse(verb):
    text = _help(verb)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    start = lines.index("Examples:")
    examples = lines[start + 1:]
    assert 1 <= len(examples) <= 2, examples  # "one or two examples" (issue 15)
    for example in examples:
        words = shlex.split(example, comments=True)
        words = words[:words.index(">")] if ">" in words else words
        at = words.index("hicmd") + 1
        assert words[at] == verb, example
        # the example's arguments are what the verb accepts: flags exist, choices are valid, required ones given
        GROUP.commands[verb].make_context(verb, words[at + 1:])


def test_a_flag_has_one_short_form_everywhere():
    short_of: dict[str, set[str]] = {}
    long_of: dict[str, set[str]] = {}
    for verb in VERBS:
        for long, param in _options_of(verb).items():
            shorts = {o for o in param.opts if not o.startswith("--")}
            short_of.setdefault(long, set()).add(frozenset(shorts))
            for short in shorts:
                long_of.setdefault(short, set()).add(long)
    assert {long: s for long, s in short_of.items() if len(s) > 1} == {}  # -o on one --out means -o on all
    assert {short: s for short, s in long_of.items() if len(s) > 1} == {}  # -c is --config wherever it exists
    assert {"-o", "-m", "-c"} <= set(long_of)


# the words each shared flag's help starts with, in every verb that has it
LEADS = {
    "--model": _options.MODEL_HELP,
    "--device": _options.DEVICE_HELP,
    "--batch": "Images per forward pass",
    "--threads": "CPU threads for inference",
    "--backend": "Inference backend",
    "--precision": "Embedder precision",
}


def test_a_shared_flag_means_the_same_thing_in_every_verb():
    seen: dict[str, list[str]] = {flag: [] for flag in LEADS}
    for verb in VERBS:
        for long, param in _options_of(verb).items():
            if long in LEADS:
                seen[long].append(verb)
                assert param.help.startswith(LEADS[long]), (verb, long, param.help)
            if long == "--model":
                assert param.metavar == "DIR", verb
            if long == "--device":  # auto everywhere; train leaves it to the config (whose default is auto)
                default = getattr(param.default, "value", param.default)
                assert default == ("auto" if verb != "train" else None), (verb, default)
    assert len(seen["--model"]) >= 4 and len(seen["--device"]) >= 4 and len(seen["--batch"]) >= 2, seen
    # the checkpoint a verb reads is CHECKPOINT everywhere: the argument of eval and export, bench's --checkpoint
    for verb in ("eval", "export"):
        argument = next(p for p in GROUP.commands[verb].params if p.param_type_name == "argument")
        assert argument.metavar == "CHECKPOINT" and argument.help.startswith(_options.CHECKPOINT_HELP), verb
    assert _options_of("bench")["--checkpoint"].metavar == "CHECKPOINT"


def test_a_switch_is_a_switch_in_every_verb():
    """`check --json` prints JSON; a --json that took a path elsewhere would read the same and mean another thing."""
    switch: dict[str, set[bool]] = {}
    for verb in VERBS:
        for long, param in _options_of(verb).items():
            switch.setdefault(long, set()).add(bool(param.is_flag))
    assert {long: kinds for long, kinds in switch.items() if len(kinds) > 1} == {}


@pytest.mark.parametrize("verb, new, old, args", [
    ("export", "--trt-batch", "--batch", ["ckpt.pt", "--batch", "1:4:8"]),
    ("score", "--out", "--json", ["--run", "r", "--gt", "g", "--json", "s.json"]),
    ("bench", "--clip", "--videos", ["--stream", "--videos", "clips/"]),
])
def test_renamed_flags_keep_their_old_spelling_hidden(verb, new, old, args):
    hidden = [p for p in GROUP.commands[verb].params if p.hidden]
    assert [p.opts for p in hidden if old in p.opts] == [[old]], verb
    assert new in _options_of(verb) and old not in _options_of(verb) and old not in _help(verb).split()
    GROUP.commands[verb].make_context(verb, args)  # still parses


def test_torch_device_accepts_cuda_n_only_in_that_form():
    assert [_options.torch_device(d) for d in ("auto", "cpu", "cuda", "cuda:1")] == ["auto", "cpu", "cuda", "cuda:1"]
    for bad in ("cuda:", "cuda:x", "gpu", "CPU"):
        with pytest.raises(typer.BadParameter, match="cuda:N"):
            _options.torch_device(bad)


def test_train_passes_amp_and_device_on_to_the_config(tmp_path):
    """The Enum/validated values reach the config: the run gets as far as reading --data."""
    pytest.importorskip("torch")
    from hicmd.errors import HicmdError

    result = CliRunner().invoke(app, ["train", "--data", "nowhere:x", "-o", str(tmp_path / "o"), "-c", "tiny",
                                      "--amp", "bf16", "--device", "cpu", "--no-eval", "--no-progress"])
    assert isinstance(result.exception, HicmdError) and "must look like" in str(result.exception), result.output


@pytest.mark.skipif(shutil.which("script") is None, reason="needs util-linux 'script' for a pseudo-terminal")
def test_export_shows_its_steps_on_a_terminal_only(tmp_path):
    """On a terminal (stderr), each export step is shown while it runs and kept with its time; piped, nothing."""
    pytest.importorskip("onnx")
    pytest.importorskip("torch")
    sys.path.insert(0, str(Path(__file__).parent))
    from test_export_pipeline import make_checkpoint

    checkpoint = make_checkpoint(tmp_path / "tiny.pt")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "120"}
    args = [sys.executable, "-m", "hicmd", "export", str(checkpoint), "--no-verify", "-o"]
    piped = subprocess.run([*args, str(tmp_path / "piped")], capture_output=True, text=True, timeout=300, env=env)
    assert piped.returncode == 0, piped.stderr
    assert "exporting rgb.onnx" not in piped.stdout + piped.stderr  # no terminal: no progress lines
    command = " ".join(shlex.quote(a) for a in [*args, str(tmp_path / "tty")]) + " > /dev/null"  # results away
    tty = subprocess.run(["script", "-qec", command, "/dev/null"], capture_output=True, text=True, timeout=300,
                         env=env)
    assert tty.returncode == 0, tty.stdout[-2000:]
    screen = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", tty.stdout)  # without colours and cursor moves
    for step in ("loading", "exporting rgb.onnx", "exporting generator.onnx", "writing manifest.json"):
        assert re.search(rf"done {step}.*\d+\.\d s", screen), (step, screen[-2000:])


@pytest.mark.parametrize("verb", VERBS)
def test_help_shows_the_extras_it_names(verb):
    """Rich reads [word] as markup: 'hicmd[mqtt]' in a help text must be escaped to reach the screen."""
    named = {m for p in GROUP.commands[verb].params for m in re.findall(r"hicmd\\?\[(\w+)\]", p.help or "")}
    text = _help(verb)
    assert all(f"hicmd[{extra}]" in text for extra in named), (verb, named)
