"""Pid-tracked processes and ``stack down``, on harmless processes started here.

These never touch the shared stack: each test has its own state folder, and the
"services" are ``sleep`` processes with pid files where the stack keeps its own.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import httpx
import psutil
import pyarrow as pa
import pytest

import neuralake
from neuralake.errors import StackError
from neuralake.lab.stack import control, processes
from neuralake.lab.stack.services import native_services, roapi_config_path

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
        # The Rust writer: one "error:" line that names the fix.
        ("writer_missing_topic.log", "error: topic 'no.such.topic' does not exist on"),
        (
            "writer_bad_credentials.log",
            "error: S3 at http://127.0.0.1:9000 refused the credentials",
        ),
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


# --- waiting, and a process started, health-gated and stopped by pid ---------------------


def test_wait_until_retries_until_the_check_passes():
    tries = []

    def check() -> None:
        tries.append(1)
        if len(tries) < 3:
            raise RuntimeError("not yet")

    processes.wait_until(check, timeout=10, interval=0.01)
    assert len(tries) == 3


def test_wait_until_reraises_the_check_s_last_error_after_the_timeout():
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="still down"):
        processes.wait_until(lambda: _raise(RuntimeError("still down")), timeout=0.3, interval=0.05)
    assert 0.3 <= time.monotonic() - started < 5


def test_wait_until_retries_only_what_it_is_told_to():
    tries = []

    def check() -> None:
        tries.append(1)
        raise ValueError("a real error")

    with pytest.raises(ValueError, match="a real error"):
        processes.wait_until(check, timeout=10, interval=0.01, retry_on=processes.NotYet)
    assert len(tries) == 1  # not retried, not waited for


def test_wait_until_stops_at_once_when_died_says_so():
    def died() -> None:
        raise processes.ProcessExited("it exited")

    started = time.monotonic()
    with pytest.raises(processes.ProcessExited, match="it exited"):
        processes.wait_until(lambda: _raise(RuntimeError("down")), timeout=30, died=died)
    assert time.monotonic() - started < 5


def test_a_process_that_exits_during_start_is_named_with_its_code_and_error(tmp_path: Path):
    pid_file, log = tmp_path / "p.pid", tmp_path / "p.log"
    log.write_text("error: a line from an earlier start\n")
    cmd = [sys.executable, "-c", "print('error: boom', flush=True); print('bye'); exit(3)"]
    processes.start(cmd, pid_file=pid_file, log_file=log, env=dict(os.environ), cwd=tmp_path)
    with pytest.raises(processes.ProcessExited) as err:
        processes.wait_healthy(
            "thing", pid_file, log, lambda: _raise(RuntimeError("no")), timeout=30, interval=0.05
        )
    assert str(err.value) == f"thing exited during start (exit code 3): see {log}: error: boom"


def test_a_process_that_never_answers_is_a_timeout_naming_its_log(tmp_path: Path):
    pid_file, log = tmp_path / "p.pid", tmp_path / "p.log"
    tracked = processes.start(
        SLEEPER, pid_file=pid_file, log_file=log, env=dict(os.environ), cwd=tmp_path
    )
    try:
        with pytest.raises(StackError, match=r"^thing did not answer within 0 s \(no\): see "):
            processes.wait_healthy(
                "thing", pid_file, log, lambda: _raise(RuntimeError("no")), timeout=0.2
            )
    finally:
        processes.stop(pid_file)
    assert gone(tracked.pid)


def test_serving_gates_on_the_check_and_stops_the_process_after_the_block(tmp_path: Path):
    port = processes.free_port()
    url = f"http://127.0.0.1:{port}/"
    cmd = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    with processes.serving(
        cmd,
        name="http.server",
        check=lambda: httpx.get(url, timeout=1).raise_for_status(),
        log_file=tmp_path / "server.log",
        pid_file=tmp_path / "server.pid",
        env=dict(os.environ),
        timeout=30,
        cwd=tmp_path,
    ) as tracked:
        assert httpx.get(url, timeout=5).status_code == 200
    assert gone(tracked.pid)
    assert not (tmp_path / "server.pid").exists()


def test_serving_stops_a_process_that_never_got_healthy(tmp_path: Path):
    pid_file = tmp_path / "sleeper.pid"
    with (
        pytest.raises(StackError, match="did not answer"),
        processes.serving(
            SLEEPER,
            name="sleeper",
            check=lambda: _raise(RuntimeError("no")),
            log_file=tmp_path / "sleeper.log",
            pid_file=pid_file,
            env=dict(os.environ),
            timeout=0.2,
        ),
    ):
        pass
    assert processes.running(pid_file) is None and not pid_file.exists()


def _raise(err: Exception) -> None:
    raise err


def test_the_roapi_health_check_asks_the_server(tmp_path: Path):
    """A private ROAPI on a local table answers the check; a port nobody serves does not."""
    from dataclasses import replace

    from deltalake import write_deltalake

    from neuralake.lab.api.server import delta_entry, roapi
    from neuralake.lab.stack import health

    s = neuralake.settings("local")
    uri = (tmp_path / "numbers").as_uri()
    write_deltalake(uri, pa.table({"n": [1, 2, 3]}))
    with roapi([delta_entry("numbers", uri)], s, tmp_path / "roapi") as listeners:
        health.check_roapi(replace(s, roapi_http=listeners.http))
    with pytest.raises(httpx.ConnectError):
        health.check_roapi(replace(s, roapi_http=f"127.0.0.1:{processes.free_port()}"))
