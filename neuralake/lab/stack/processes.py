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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from neuralake.errors import StackError
from neuralake.waiting import NotYet, wait_until

__all__ = ["NotYet", "wait_until"]  # re-exported: the stack waits with the same helper


@dataclass(frozen=True)
class Tracked:
    """A process the stack started, as written to its pid file."""

    pid: int
    create_time: float
    cmdline: list[str]
    log_from: int = 0  # where this start's lines begin in its log file (bytes)

    def is_running(self) -> bool:
        """Whether this very process still runs (same pid *and* start time, not a zombie)."""
        try:
            proc = psutil.Process(self.pid)
            same = abs(proc.create_time() - self.create_time) < 0.5
            return same and proc.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    def exit_code(self) -> int | None:
        """Reap it if it finished and is our child; None when unknown (not our child)."""
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            return None
        return os.waitstatus_to_exitcode(status) if pid else None


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
    return tracked if tracked is not None and tracked.is_running() else None


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
    """The exit code of the finished child ``pid_file`` names; None when unknown."""
    tracked = recorded(pid_file)
    return tracked.exit_code() if tracked is not None else None


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


class ProcessExited(StackError):
    """A process exited while :func:`wait_healthy` waited for it to answer."""


def wait_healthy(
    name: str,
    pid_file: Path,
    log_file: Path,
    check: Callable[[], object],
    *,
    timeout: float,
    interval: float = 0.5,
) -> None:
    """Wait until ``check()`` passes for the process ``pid_file`` names, or say why not.

    Raises :class:`ProcessExited` as soon as the process is gone (its exit code and the
    line of its log that says why), and ``StackError`` once ``timeout`` has passed.
    """

    def cause() -> str:  # from this start's lines of the log only
        tracked = recorded(pid_file)
        return log_error_line(log_file, tracked.log_from if tracked else 0)

    def died() -> None:
        if running(pid_file) is None:
            raise ProcessExited(
                f"{name} exited during start (exit code {exit_code(pid_file)}): "
                f"see {log_file}: {cause()}"
            )

    try:
        wait_until(check, timeout=timeout, died=died, interval=interval)
    except ProcessExited:
        raise
    except Exception as err:
        died()  # it may have exited during the last try
        raise StackError(
            f"{name} did not answer within {timeout:.0f} s ({one_line(err)}): "
            f"see {log_file}: {cause()}"
        ) from err


@contextmanager
def serving(
    cmd: list[str],
    *,
    name: str,
    check: Callable[[], object],
    log_file: Path,
    pid_file: Path,
    env: dict[str, str],
    timeout: float,
    cwd: Path | None = None,
    interval: float = 0.2,
) -> Iterator[Tracked]:
    """Start ``cmd``, wait until ``check()`` passes, and stop it when the block ends.

    For servers a test or a benchmark runs for itself: the process is stopped on the
    way out even when it never got healthy.
    """
    tracked = start(cmd, pid_file=pid_file, log_file=log_file, env=env, cwd=cwd or Path.cwd())
    try:
        wait_healthy(name, pid_file, log_file, check, timeout=timeout, interval=interval)
        yield tracked
    finally:
        stop(pid_file, timeout=10)


def one_line(err: object, limit: int = 200) -> str:
    """An error's text on one line (its type's name when it has none)."""
    text = " ".join(str(err).split())
    return text[:limit] or type(err).__name__


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
