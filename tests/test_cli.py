"""The ``neuralake`` command: usage errors are a message and the usage, never a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest


def neuralake(*args: str) -> subprocess.CompletedProcess[str]:
    code = "from neuralake.lab.cli import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["catalog", "site"], "Missing option '--module'"),
        (["stack", "no-such-command"], "No such command 'no-such-command'"),
        (["stack"], "Usage: "),
        (["catalog"], "Usage: "),
        (["api"], "Usage: "),
        (["writer"], "Usage: "),
        (["docs"], "Usage: "),
        (["bench", "no-such-command"], "No such command 'no-such-command'"),
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


def test_stack_status_is_a_table_with_each_problem_below_it(tmp_path, monkeypatch):
    """An empty state folder: nothing runs, so every row says so (and the exit code is 1)."""
    from typer.testing import CliRunner

    from neuralake.lab.stack.cli import app

    monkeypatch.setenv("NEURALAKE_STATE_DIR", str(tmp_path / "state"))
    result = CliRunner().invoke(app, ["status"])
    assert result.exit_code == 1
    header, *rows = result.output.splitlines()
    assert header.split() == ["SERVICE", "MODE", "ADDRESS", "PID", "HEALTHY", "DATA"]
    table = [line.split() for line in rows[:3]]
    assert [row[0] for row in table] == ["minio", "kafka", "postgres"]
    assert all(row[3:5] == ["-", "no"] for row in table)
    assert header.index("DATA") == rows[0].index(str(tmp_path / "state" / "minio" / "data"))
    assert rows[3:] == ["minio: not running", "kafka: not running", "postgres: not running"]
    assert not any(line.endswith(" ") for line in result.output.splitlines())


def test_writer_status_is_a_table_with_each_topic_below_it(tmp_path, monkeypatch):
    """A harmless process recorded as a table's ingest: alive, with its topic and table."""
    import json
    import os

    from typer.testing import CliRunner

    import neuralake
    from neuralake.lab.stack import processes
    from neuralake.lab.writer import control
    from neuralake.lab.writer.cli import app

    monkeypatch.setenv("NEURALAKE_STATE_DIR", str(tmp_path / "state"))
    s = neuralake.settings()
    config = {
        "topic": "t.in",
        "table_uri": s.table_uri("t_bronze"),
        "dead_letter_uri": s.table_uri("t_bronze_dead"),
        "ports": {"ingest": 9464, "compact": 9465, "vacuum": 9466},
        "processes": ["ingest"],
    }
    folder = tmp_path / "state" / "writer" / "t_bronze"
    folder.mkdir(parents=True)
    (folder / "writer.json").write_text(json.dumps(config))
    sleeper = [sys.executable, "-c", "import time; time.sleep(300)"]
    pid_file = control._pid_file(s, "t_bronze", "ingest")
    tracked = processes.start(
        sleeper, pid_file=pid_file, log_file=folder / "ingest.log", env=dict(os.environ), cwd=folder
    )
    try:
        result = CliRunner().invoke(app, ["status"])
    finally:
        processes.stop(pid_file)
    assert result.exit_code == 0, result.output
    assert [line.split() for line in result.output.splitlines()] == [
        ["TABLE", "PROCESS", "PID", "ALIVE", "PARTITIONS", "LAG", "METRICS"],
        # no metrics answer on the port, so no partitions or lag to show
        ["t_bronze", "ingest", str(tracked.pid), "yes", "-", "-", "http://127.0.0.1:9464/metrics"],
        ["t_bronze:", "topic", "t.in", "->", config["table_uri"]],
    ]
