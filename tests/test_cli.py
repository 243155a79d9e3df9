"""The ``neuralake`` command: usage errors are a message and the usage, never a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest


def neuralake(*args: str) -> subprocess.CompletedProcess[str]:
    code = "from neuralake.cli import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["catalog", "site"], "Missing option '--module'"),
        (["stack", "no-such-command"], "No such command 'no-such-command'"),
        (["stack"], "Usage: "),
    ],
)
def test_usage_errors_show_usage_not_a_traceback(args: list[str], says: str):
    result = neuralake(*args)
    assert result.returncode == 2
    assert says in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_every_command_group_has_help():
    result = neuralake("--help")
    assert result.returncode == 0
    for group in (
        "stack",
        "catalog",
        "labs",
        "writer",
        "produce",
        "docs",
        "api",
        "bench",
        "spark",
        "notebooks",
    ):
        assert group in result.stdout
