"""The root ``bastion`` command: global options and error mapping."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
import torch
from typer.testing import CliRunner

from bastion.cli.main import _register_commands, app

runner = CliRunner()


@pytest.fixture
def keep_threads() -> Iterator[int]:
    before = torch.get_num_threads()
    yield before
    torch.set_num_threads(before)


def test_threads_option_sets_torch_threads(keep_threads: int) -> None:
    _register_commands()
    wanted = 1 if keep_threads != 1 else 2
    result = runner.invoke(app, ["--threads", str(wanted), "catalog", "ML01"])
    assert result.exit_code == 0, result.output
    assert torch.get_num_threads() == wanted


def test_threads_below_one_is_a_usage_error() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bastion", "--threads", "0", "catalog", "ML01"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "--threads" in proc.stderr
    assert "Traceback" not in proc.stderr
