"""Configs (frozen presets, files, typed overrides) and the CLI front door (fast help, no torch, clean errors)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from hicmd.config import ConfigError, config_from_dict, config_to_dict, load_config

HICMD = [sys.executable, "-m", "hicmd"]


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*HICMD, *args], capture_output=True, text=True, timeout=timeout)


def test_presets_are_frozen_and_round_trip() -> None:
    paper, tiny = load_config("paper"), load_config("tiny")
    with pytest.raises(dataclasses.FrozenInstanceError):
        paper.model.height = 1  # type: ignore[misc]
    assert (paper.model.height, paper.model.width, paper.model.embedding_dim) == (256, 128, 2048)
    assert tiny.model.prototype_channels == 64 and tiny.model.embedding_dim == 512
    assert config_from_dict(config_to_dict(tiny)) == tiny


def test_overrides_are_type_checked() -> None:
    cfg = load_config("tiny", ["train.iters=7", "train.betas=[0.9,0.99]", "train.flip=false", "loss.gan=5"])
    assert (cfg.train.iters, cfg.train.betas, cfg.train.flip, cfg.loss.gan) == (7, (0.9, 0.99), False, 5.0)
    with pytest.raises(ConfigError, match="expected an integer"):
        load_config("tiny", ["train.iters=lots"])
    with pytest.raises(ConfigError, match="unknown key"):
        load_config("tiny", ["train.itres=3"])
    with pytest.raises(ConfigError, match="section.key=value"):
        load_config("tiny", ["iters"])


def test_config_files(tmp_path: Path) -> None:
    toml = tmp_path / "mine.toml"
    toml.write_text('base = "tiny"\n[train]\niters = 42\n[model]\nencoder_dim = 16\n')
    cfg = load_config(str(toml))
    assert (cfg.name, cfg.train.iters, cfg.model.encoder_dim, cfg.model.backbone) == ("mine", 42, 16, "resnet18")
    yaml_file = tmp_path / "y.yaml"
    yaml_file.write_text("train:\n  lr_gen: 0.0002\n")
    assert load_config(str(yaml_file)).train.lr_gen == 2e-4
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(str(tmp_path / "missing.toml"))
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(str(bad))


def test_help_is_fast_and_imports_no_torch() -> None:
    code = "import sys, hicmd.cli, hicmd.config, hicmd.runtime; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr
    result = run("--help")
    assert result.returncode == 0
    for verb in ("train", "eval", "export", "stream", "translate", "bench", "demo", "synth", "info"):
        assert verb in result.stdout


def test_info_prints_reference_parameter_counts() -> None:
    result = run("info", "--config", "paper")
    assert result.returncode == 0, result.stderr
    for count in ("1,520,448", "12,123,011", "1,025,571", "8,317,952", "37,546,880"):
        assert count in result.stdout


def test_bad_config_is_one_clear_line_not_a_traceback(tmp_path: Path) -> None:
    result = run("info", "--config", str(tmp_path / "nope.toml"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "does not exist" in result.stderr
