"""One name and one default per setting: every DownloadConfig/TrainConfig setting is one CLI flag with the
field's default, a recipe key and its flag set the same field, and renamed keys and flags say the new name."""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
from dataclasses import fields

import pytest

from curate import cli
from curate.download.config import DownloadConfig
from curate.errors import CurateError
from curate.settings import flag, from_args, from_table, option_fields
from curate.train.configs import TrainConfig

# Set by the command itself (positional DATA and -o RUN_DIR) or free-form notes: not settings.
NOT_FLAGS = {"data", "out_dir", "extra"}
CONFIGS = [
    ("download", DownloadConfig, ["MANIFEST", "-o", "DS"]),
    ("train", TrainConfig, ["DATA", "-o", "RUN"]),
]


def _subparser(command: str) -> argparse.ArgumentParser:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command]


@pytest.mark.parametrize(("command", "cls", "positional"), CONFIGS)
def test_every_setting_is_one_flag_with_the_field_default(command, cls, positional):
    parser = _subparser(command)
    parsed = vars(parser.parse_args(positional))
    default = cls(data="x", out_dir="y") if cls is TrainConfig else cls()
    for f in fields(cls):
        owners = [a for a in parser._actions if a.dest == f.name]
        if f.name in NOT_FLAGS:
            assert not any(a.option_strings for a in owners) and f not in option_fields(cls)
            continue
        assert len(owners) == 1 and owners[0].option_strings[0] == flag(f.name), f.name
        assert parsed[f.name] == getattr(default, f.name), f.name


def test_recipe_key_and_flag_set_the_same_field():
    parser = _subparser("download")
    args = parser.parse_args(
        [
            "M",
            "-o",
            "D",
            "--request-retries",
            "0",
            "--no-respect-robots-txt",
            "--allow-networks",
            "10.0.0.0/8,127.0.0.1/32",
            "--allow-networks",
            "192.168.0.0/16",
            "--total-timeout",
            "7",
            "--no-reencode",
        ]
    )
    from_flags = from_args(DownloadConfig, args)
    from_recipe = from_table(
        DownloadConfig,
        {
            "request_retries": 0,
            "respect_robots_txt": False,
            "total_timeout": 7.0,
            "reencode": False,
            "allow_networks": ["10.0.0.0/8", "127.0.0.1/32", "192.168.0.0/16"],
        },
        "download",
    )
    assert from_flags == from_recipe
    assert from_flags.allow_networks == ("10.0.0.0/8", "127.0.0.1/32", "192.168.0.0/16")
    assert from_flags.request_retries == 0 and not from_flags.respect_robots_txt

    train_args = _subparser("train").parse_args(
        [
            "D",
            "-o",
            "R",
            "--batch-size",
            "8",
            "--betas",
            "0.9,0.95",
            "--no-progress",
            "--init",
            "w.pt",
            "--init-kind",
            "openai",
        ]
    )
    flags = from_args(TrainConfig, train_args, data=["D"], out_dir="R")
    table = from_table(
        TrainConfig,
        {"batch_size": 8, "betas": [0.9, 0.95], "progress": False, "init": "w.pt", "init_kind": "openai"},
        "train",
        data=["D"],
        out_dir="R",
    )
    assert flags == table and flags.betas == (0.9, 0.95)


def test_old_recipe_key_reads_with_a_warning_and_clashes_are_errors(caplog):
    with caplog.at_level(logging.WARNING, logger="curate.settings"):
        cfg = from_table(DownloadConfig, {"retries": 5}, "download")
    assert cfg.request_retries == 5
    assert "retries is the old name of request_retries" in caplog.text
    with pytest.raises(CurateError, match="both retries and request_retries"):
        from_table(DownloadConfig, {"retries": 5, "request_retries": 1}, "download")
    with pytest.raises(CurateError, match="unknown key 'max_byte'.*max_bytes"):
        from_table(DownloadConfig, {"max_byte": 5}, "download")


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("--timeout", "--total-timeout"),
        ("--ignore-robots-txt", "--no-respect-robots-txt"),
        ("--allow-network", "--allow-networks"),
    ],
)
def test_old_download_flags_name_the_new_one(old, new, capsys):
    with pytest.raises(SystemExit):
        _subparser("download").parse_args(["M", "-o", "D", old])
    assert f"{old} is now {new}" in capsys.readouterr().err


def test_building_every_option_loads_neither_torch_nor_pyarrow():
    # The options come from the config dataclasses and curate.schema's vocabularies, which the CLI imports to
    # build its parser: `curate --help` must stay instant on a machine where torch takes seconds to load.
    code = (
        "import sys; from curate import cli; cli.build_parser(); "
        "print(','.join(m for m in ('torch', 'pyarrow', 'duckdb', 'numpy') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == ""
