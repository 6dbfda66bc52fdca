"""The `curate` command itself: help, version, and user errors as one line instead of a traceback."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest

import curate
from curate import commands
from curate.extras import MissingExtraError, require


def _curate(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "curate", *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_help_lists_every_command_with_a_description():
    out = _curate("--help")
    assert out.returncode == 0
    names = [m.name for m in pkgutil.iter_modules(commands.__path__) if not m.name.startswith("_")]
    assert len(names) >= 10
    lines = out.stdout.splitlines()
    for name in names:
        line = next((ln for ln in lines if ln.strip().startswith(name + " ")), None)
        assert line is not None, f"{name} missing from curate --help"
        assert len(line.split()) > 2, f"{name} has no description"


def test_version():
    out = _curate("--version")
    assert out.stdout.strip() == f"curate {curate.__version__}"


def test_user_error_is_one_line_without_traceback(tmp_path):
    out = _curate("run", str(tmp_path / "no-such-recipe.toml"))
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert "no-such-recipe.toml" in out.stderr and "does not exist" in out.stderr


def test_missing_extra_names_the_pip_command():
    with pytest.raises(MissingExtraError, match=r"pip install 'curate\[ray\]'"):
        require("curate_no_such_module_xyz", "ray")
