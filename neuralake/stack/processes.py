"""Start and stop the stack's processes, tracked by pid files.

A pid file records the pid, the command line and the process's start time. A pid
alone is not enough: after a reboot the same number can belong to anything, and
``down`` must never stop a process the stack did not start. So a process counts as
ours only while pid *and* start time still match.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil


@dataclass(frozen=True)
class Tracked:
    """A process the stack started, as written to its pid file."""

    pid: int
    create_time: float
    cmdline: list[str]
    log_from: int = 0  # where this start's lines begin in its log file (bytes)


def start(
    cmd: list[str],
    *,
    pid_file: Path,
    log_file: Path,
    env: dict[str, str],
    cwd: Path,
    user: str | None = None,
) -> Tracked:
    """Start ``cmd`` detached in its own session, logging to ``log_file``."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        log_from = log.tell()  # earlier starts' lines stay above this offset
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            user=user,
            start_new_session=True,  # own process group: stop() signals the whole group
        )
    tracked = Tracked(proc.pid, psutil.Process(proc.pid).create_time(), cmd, log_from)
    pid_file.write_text(json.dumps(asdict(tracked)))
    return tracked


def recorded(pid_file: Path) -> Tracked | None:
    """What ``pid_file`` records, whether or not that process still runs."""
    try:
        return Tracked(**json.loads(pid_file.read_text()))
    except (FileNotFoundError, ValueError, TypeError):
        return None


def running(pid_file: Path) -> Tracked | None:
    """The process recorded in ``pid_file`` if it is still that very process."""
    tracked = recorded(pid_file)
    if tracked is None:
        return None
    try:
        proc = psutil.Process(tracked.pid)
        same = abs(proc.create_time() - tracked.create_time) < 0.5
        alive = proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return None
    return tracked if same and alive else None


def stop(pid_file: Path, timeout: float = 30.0) -> bool:
    """Stop our process (SIGTERM, then SIGKILL after ``timeout``). False if none ran."""
    tracked = running(pid_file)
    pid_file.unlink(missing_ok=True)
    if tracked is None:
        return False
    group = _group_of(tracked.pid)
    _signal_group(group, signal.SIGTERM)
    _, alive = psutil.wait_procs(group, timeout=timeout)
    if alive:
        _signal_group(alive, signal.SIGKILL)
        psutil.wait_procs(alive, timeout=5)
    return True


def exit_code(pid_file: Path) -> int | None:
    """Reap a finished child if it is ours; None when unknown (not our child)."""
    tracked = recorded(pid_file)
    if tracked is None:
        return None
    try:
        pid, status = os.waitpid(tracked.pid, os.WNOHANG)
    except ChildProcessError:
        return None
    return os.waitstatus_to_exitcode(status) if pid else None


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (the kernel picks it), for throwaway servers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_holder(port: int) -> str:
    """Who listens on ``port``, e.g. ``pid 4242 (python3 -m http.server)``."""
    try:
        connections = psutil.net_connections(kind="inet")
    except psutil.AccessDenied:
        return "another process"
    for conn in connections:
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
            if conn.pid is None:
                return "another process"
            try:
                cmd = " ".join(psutil.Process(conn.pid).cmdline())[:80]
            except psutil.Error:
                cmd = "?"
            return f"pid {conn.pid} ({cmd})"
    return "another process"


def wait_until(check, *, timeout: float, died=None, interval: float = 0.5) -> None:
    """Call ``check()`` until it stops raising; re-raise its last error after ``timeout``.

    ``died()`` is polled between tries so a crashed process fails fast instead of
    waiting out the whole timeout.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            check()
            return
        except Exception:
            if died is not None:
                died()
            if time.monotonic() > deadline:
                raise
            time.sleep(interval)


# A line that says why a process stopped: Rust CLIs (clap, the writer) start it with
# "error:", MinIO with "FATAL", PostgreSQL with "FATAL:", Kafka and log crates with "ERROR".
_RUST_ERROR = re.compile(r"^error:", re.IGNORECASE)
_SEVERE = re.compile(r"\b(error|fatal|panic)", re.IGNORECASE)


def error_line(text: str, limit: int = 300) -> str:
    """The line of a process's output that says why it stopped, at most ``limit`` long.

    The last line that starts with ``error:``, else the last one naming an error, a fatal
    failure or a panic, else the last line. The very last line is often only a farewell
    ("For more information, try '--help'.", "database system is shut down", the bottom of
    a Java stack trace), so a line that names the cause is preferred to it.
    """
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for pattern in (_RUST_ERROR, _SEVERE):
        matches = [line for line in lines if pattern.search(line)]
        if matches:
            return matches[-1][:limit]
    return lines[-1][:limit] if lines else "(empty log)"


def log_error_line(log: Path, since: int = 0, limit: int = 300) -> str:
    """:func:`error_line` of what ``log`` got after byte ``since`` (this start's lines)."""
    try:
        with open(log, "rb") as file:
            file.seek(since)
            text = file.read().decode(errors="replace")
    except FileNotFoundError:
        return "(no log)"
    return error_line(text, limit)


def _group_of(pid: int) -> list[psutil.Process]:
    """The process and everything it spawned (our services start their own sessions)."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _signal_group(procs: list[psutil.Process], sig: int) -> None:
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):  # already gone: what we wanted
            proc.send_signal(sig)
