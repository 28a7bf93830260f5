"""Bad inputs to synth, train, eval, export, translate and bench: one clear line each, found by trying the CLI as
a new user would (tracebacks, a machine run out of memory, a finished run silently replaced, exit 0 for nothing)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from hicmd.checkpoint import load_checkpoint, save_checkpoint
from hicmd.cli import app
from hicmd.config import ConfigError, load_config
from hicmd.errors import HicmdError
from testkit.cli import hicmd, one_line
from testkit.train import MICRO, micro_config, write_synth


def _refused(argv: list[str], message: str) -> None:
    """In-process (no second torch import): the verb raises the one-line error the CLI prints."""
    result = CliRunner().invoke(app, argv)
    assert isinstance(result.exception, HicmdError), result.output
    assert message in str(result.exception) and "\n" not in str(result.exception), str(result.exception)


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "true"])
def test_a_config_number_must_be_a_finite_number(value):
    # inf passed the "positive" check and trained to NaN weights; true read as 1.0
    with pytest.raises(ConfigError, match="expected a finite number"):
        load_config("tiny", [f"train.lr_gen={value}"])


def test_training_into_a_finished_run_is_refused_unless_resumed(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "last.pt").write_bytes(b"a finished run's model")
    _refused(["train", "--config", "tiny", "--data", f"regdb:{tmp_path}/data", "--out", str(tmp_path / "run"),
              "--iters", "1", "--no-eval"], "already holds a run")
    assert (tmp_path / "run" / "last.pt").read_bytes() == b"a finished run's model"


def test_resuming_from_weights_without_a_run_says_so(tmp_path):
    from hicmd.train.loop import train

    data = f"regdb:{write_synth(tmp_path / 'data')}"
    train(micro_config(), data, tmp_path / "run", iters=1, evaluate=False, show_progress=False)
    state = load_checkpoint(tmp_path / "run" / "last.pt")
    sets = [a for s in MICRO for a in ("--set", s)]
    converted = {k: v for k, v in state.items() if k not in ("trainer", "ranks", "world_size")}
    save_checkpoint(tmp_path / "converted.pt", converted)  # as `hicmd convert-original` writes one
    _refused(["train", "--config", "tiny", *sets, "--data", data, "--out", str(tmp_path / "r1"), "--iters", "2",
              "--no-eval", "--no-progress", "--resume", str(tmp_path / "converted.pt")], "no optimiser state")
    state["model"].pop(next(iter(state["model"])))
    save_checkpoint(tmp_path / "missing.pt", state)
    _refused(["train", "--config", "tiny", *sets, "--data", data, "--out", str(tmp_path / "r2"), "--iters", "2",
              "--no-eval", "--no-progress", "--resume", str(tmp_path / "missing.pt")], "do not fit its config")


def test_a_permutation_file_too_short_to_be_matlab_is_one_line(tmp_path):
    from hicmd.evaluation.protocols import load_permutations

    (tmp_path / "empty.mat").write_bytes(b"")
    with pytest.raises(ValueError, match="cannot read .* as a MATLAB file"):
        load_permutations(tmp_path / "empty.mat")


def test_options_that_ran_out_of_memory_hung_or_crashed_are_bounded(tmp_path):
    from testkit.graphs import make_export

    make_export(tmp_path / "model")
    _refused(["bench", "--model", str(tmp_path / "model"), "--batch", "100000000"], "from 1 to 4096")
    _refused(["bench", "--model", str(tmp_path / "model"), "--threads", "100000"], "--threads must be 1 to")
    _refused(["synth", "--out", str(tmp_path / "s"), "--size", "100000x100000"], "each 16 to 1024")
    _refused(["export", str(tmp_path / "none.pt"), "--out", str(tmp_path / "m"), "--opset", "9"], "use 11..20")
    _refused(["translate", "--model", str(tmp_path / "model"), "--src", "a.png", "--ref", "b.png", "--out",
              str(tmp_path / "t.png"), "--backend", "triton"], "translate runs the generator here")
    for argv in (["synth", "--out", str(tmp_path / "s"), "--seed", "-1"],
                 ["translate", "--model", str(tmp_path / "model"), "--src", "a.png", "--ref", "b.png", "--threads",
                  "100000"]):
        result = CliRunner().invoke(app, argv)
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert not (tmp_path / "s").exists()


def test_a_bench_that_measured_nothing_fails(tmp_path):
    from testkit.graphs import make_export

    make_export(tmp_path / "model")
    proc = hicmd("bench", "--model", str(tmp_path / "model"), "--quick", "--batch", "1", "--backend", "tensorrt",
                 "--out", str(tmp_path / "b"))
    one_line(proc, "no embedder row could be measured")


def test_a_camera_url_pasted_into_any_option_is_shown_without_its_password():
    proc = hicmd("bench", "--no-embedder", "--stream", "--clip", "rtsp://admin:S3cretPW@10.0.0.5/main")
    one_line(proc, "rtsp:/***@10.0.0.5/main")
    assert "S3cretPW" not in proc.stdout + proc.stderr



def test_an_output_that_is_a_file_is_refused_before_the_work(tmp_path):
    (tmp_path / "ckpt.pt").write_bytes(b"never read: the output is checked first")
    (tmp_path / "afile").write_text("")
    _refused(["eval", str(tmp_path / "ckpt.pt"), "--data", "regdb:x", "--device", "cpu", "--out",
              str(tmp_path / "afile")], "is a file")
    for flag in ("--out", "--triton", "--deepstream"):
        extra = [] if flag == "--out" else ["--out", str(tmp_path / "m")]
        _refused(["export", str(tmp_path / "ckpt.pt"), *extra, flag, str(tmp_path / "afile")], f"{flag} ")


@pytest.mark.parametrize("override, message", [
    ("loss.ce=-1", "loss.ce=-1.0 is out of range"),  # a negative weight rewards the error it weighs
    ("model.backbone_layers=[1,1,1", "the list is not closed"),  # was read as [1,1,1]
])
def test_config_overrides_that_were_accepted_in_silence(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config("tiny", [override])


def test_config_file_mistakes_are_one_line_naming_every_preset(tmp_path):
    with pytest.raises(ConfigError, match=r"use a preset \(paper, tiny, edge\)"):
        load_config(str(tmp_path / "nope.toml"))
    (tmp_path / "bad.yaml").write_text("train:\n  iters: [1,\n")
    with pytest.raises(ConfigError) as caught:
        load_config(str(tmp_path / "bad.yaml"))
    assert "\n" not in str(caught.value)


def test_options_a_run_would_ignore_are_refused(tmp_path):
    from hicmd.evaluation.runner import ProtocolError, evaluate

    with pytest.raises(ProtocolError, match="belong to the SYSU-MM01 protocol only"):  # RegDB has no indoor search
        evaluate(None, load_config("tiny"), f"regdb:{tmp_path}", modes=("indoor",))
    (tmp_path / "clip").mkdir()
    _refused(["bench", "--clip", str(tmp_path / "clip")], "add --stream")
    _refused(["bench", "--backend", "onnxruntime,,torch"], "--backend 'onnxruntime,,torch'")
    _refused(["synth", "--out", str(tmp_path / "s"), "--clips", "3"], "add --videos")


def test_a_run_folder_given_for_its_checkpoint_points_at_the_file(tmp_path):
    from hicmd.checkpoint import CheckpointError

    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "last.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"is a folder: give the .pt file in it \(e.g. .*last.pt\)"):
        load_checkpoint(tmp_path / "run")
