"""Pid-tracked processes and ``stack down``, on harmless processes started here.

These never touch the shared stack: each test has its own state folder, and the
"services" are ``sleep`` processes with pid files where the stack keeps its own.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import psutil
import pytest

import neuralake
from neuralake.stack import control, processes
from neuralake.stack.services import native_services, roapi_config_path

SLEEPER = [sys.executable, "-c", "import time; time.sleep(300)"]


@pytest.fixture
def own_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> neuralake.Settings:
    monkeypatch.setenv("NEURALAKE_STATE_DIR", str(tmp_path / "state"))
    return neuralake.settings("stack")


def start_sleeper(s: neuralake.Settings, name: str) -> processes.Tracked:
    """A harmless process recorded as the stack's ``name`` service."""
    return processes.start(
        SLEEPER,
        pid_file=control._pid_file(s, name),
        log_file=control.log_file(s, name),
        env=dict(os.environ),
        cwd=s.state_dir,
    )


def gone(pid: int) -> bool:
    return not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_down_stops_a_service_whose_config_was_removed(own_state):
    s = own_state
    # ROAPI was started from its config; then the config went (a test's unserve, a user).
    assert not roapi_config_path(s).exists()
    assert "roapi" not in [svc.name for svc in native_services(s)]
    roapi = start_sleeper(s, "roapi")
    try:
        assert control.down(s, echo=lambda _: None) == ["roapi"]
        assert gone(roapi.pid), "down left a process running that its pid file names"
        assert control.down(s, echo=lambda _: None) == []  # idempotent
    finally:
        if not gone(roapi.pid):
            psutil.Process(roapi.pid).kill()


def test_down_stops_in_reverse_start_order(own_state):
    s = own_state
    started = [start_sleeper(s, name) for name in ("minio", "postgres", "roapi")]
    try:
        assert control.down(s, echo=lambda _: None) == ["roapi", "postgres", "minio"]
        assert all(gone(t.pid) for t in started)
    finally:
        for t in started:
            if not gone(t.pid):
                psutil.Process(t.pid).kill()


# --- the line that says why a process stopped -------------------------------------------

LOGS = Path(__file__).parent / "data" / "logs"  # real output of each server, failing to start


@pytest.mark.parametrize(
    ("sample", "line"),
    [
        # The stack's services: the cause, not the farewell under it.
        ("minio_port_taken.log", "FATAL Unable to start the server: Specified port is already"),
        ("postgres_port_taken.log", "FATAL:  could not create any TCP/IP sockets"),
        ("kafka_storage_not_formatted.log", "ERROR Exiting Kafka due to fatal exception"),
        # ROAPI (a clap parser ends with "For more information, try '--help'.").
        ("roapi_usage.log", "error: unexpected argument '--bad' found"),
        ("roapi_missing_table.log", "error: Failed to build context: Failed to load table"),
    ],
)
def test_error_line_names_the_cause_in_real_logs(sample: str, line: str):
    found = processes.error_line((LOGS / sample).read_text())
    assert line in found
    assert len(found) <= 300


def test_error_line_prefers_an_error_prefix_then_a_severity_then_the_last_line():
    log = "ERROR retrying\nerror: the real cause\nFor more information, try '--help'.\n"
    assert processes.error_line(log) == "error: the real cause"
    assert processes.error_line("starting\nFATAL: no\n\nshut down\n") == "FATAL: no"
    assert processes.error_line("just one line\n") == "just one line"
    assert processes.error_line("\n  \n") == "(empty log)"
    assert processes.error_line("x" * 500, limit=10) == "x" * 10


def test_log_error_line_reads_only_this_starts_lines(tmp_path: Path):
    log = tmp_path / "service.log"
    assert processes.log_error_line(log) == "(no log)"
    log.write_text("error: from the last start\n")
    since = log.stat().st_size
    log.write_text(log.read_text() + "this start said only this\n")
    assert processes.log_error_line(log) == "error: from the last start"
    assert processes.log_error_line(log, since) == "this start said only this"


def test_a_pid_file_records_where_the_start_s_log_lines_begin(own_state):
    s = own_state
    log = control.log_file(s, "minio")
    log.parent.mkdir(parents=True)
    log.write_text("FATAL: an earlier start\n")
    tracked = start_sleeper(s, "minio")
    try:
        assert tracked.log_from == len("FATAL: an earlier start\n")
        assert processes.recorded(control._pid_file(s, "minio")) == tracked
    finally:
        processes.stop(control._pid_file(s, "minio"))
    assert processes.recorded(control._pid_file(s, "minio")) is None  # stop removes it
