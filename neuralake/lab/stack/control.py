"""``neuralake stack up | down | status | logs``: run the stack natively or with Docker.

Both modes serve the same ports, credentials, bucket and topic names, so every
notebook works with either. ``up`` returns only when every service answers a real
request; ``down`` stops only what ``up`` started and keeps all data.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from neuralake.errors import StackError
from neuralake.lab.stack import processes
from neuralake.lab.stack.services import START_ORDER, Service, native_services
from neuralake.settings import ENV_VARS, Settings, project_dir, settings, stack_marker

# Which variable moves each service to other ports, for the "port is taken" error.
_MOVE_WITH = {
    "minio": ENV_VARS["s3_endpoint"],
    "kafka": ENV_VARS["kafka_bootstrap"],
    "postgres": ENV_VARS["postgres_dsn"],
    "roapi": ENV_VARS["roapi_http"],
}


@dataclass(frozen=True)
class ServiceStatus:
    service: str
    mode: str
    address: str
    pid: int | None
    healthy: bool
    data: str
    error: str | None = None


def up(
    s: Settings | None = None,
    *,
    docker: bool = False,
    only: list[str] | None = None,
    echo: Callable[[str], None] = print,
) -> list[ServiceStatus]:
    """Start the stack (idempotent) and wait until every service is healthy."""
    s = s or settings("stack")
    mode = "docker" if docker else "native"
    current = _marker(s)
    if current and current["mode"] != mode:
        raise StackError(
            f"the stack is already up in {current['mode']} mode: run `neuralake stack down` first"
        )
    services = _select(native_services(s), only)
    if docker:
        # ROAPI sits in compose's `api` profile; naming it starts it once a config exists.
        _compose(s, "up", "--detach", "--wait", *[svc.name for svc in services])
        for svc in services:
            _wait_healthy(s, svc, mode)
            echo(f"{svc.name:<9} healthy at {svc.address}")
    else:
        started = []  # what this call started, and stops again if a later service fails
        try:
            for svc in services:
                if _start_native(s, svc, echo):
                    started.append(svc)
            for svc in services:
                _wait_healthy(s, svc, mode)
                echo(f"{svc.name:<9} healthy at {svc.address}")
        except BaseException:
            for svc in reversed(started):
                processes.stop(_pid_file(s, svc.name))
            raise
    if any(svc.name == "roapi" for svc in services):
        from neuralake.lab.api.windows import restart_windows

        restart_windows(s, echo)  # the serving windows serve() started, after a restart
    _write_marker(s, mode)
    return status(s)


def down(s: Settings | None = None, *, echo: Callable[[str], None] = print) -> list[str]:
    """Stop what the stack started (pid files or compose), keep the data. Idempotent."""
    s = s or settings("stack")
    current = _marker(s)
    stopped = []
    if current and current["mode"] == "docker":
        _compose(s, "down")  # containers go, named volumes (the data) stay
        stopped = [svc.name for svc in native_services(s)]
    else:
        # By pid file, not by today's services: ROAPI started before its config was
        # removed is no longer among native_services(s), but it still runs.
        for name in _tracked_names(s):
            if processes.stop(_pid_file(s, name)):
                stopped.append(name)
    from neuralake.lab.api.windows import stop_windows

    stopped += stop_windows(s, forget=False)  # kept: the next `up` starts them again
    stack_marker(s.state_dir).unlink(missing_ok=True)
    for name in stopped:
        echo(f"{name:<9} stopped (data kept in {s.state_dir})")
    return stopped


def status(s: Settings | None = None) -> list[ServiceStatus]:
    """One row per service: mode, address, pid, health, data folder."""
    s = s or settings("stack")
    mode = (_marker(s) or {}).get("mode", "native")
    rows = []
    for svc in native_services(s):
        tracked = processes.running(_pid_file(s, svc.name)) if mode == "native" else None
        error = None
        if mode == "native" and tracked is None:
            error = "not running"
        else:
            try:
                svc.check(s)
            except Exception as err:  # reported in the row, not raised: status never fails
                error = processes.one_line(err)
        rows.append(
            ServiceStatus(
                service=svc.name,
                mode=mode,
                address=svc.address,
                pid=tracked.pid if tracked else None,
                healthy=error is None,
                data=str(svc.data_dir),
                error=error,
            )
        )
    return rows


def log_file(s: Settings, service: str) -> Path:
    return s.state_dir / "logs" / f"{service}.log"


def logs(s: Settings | None, service: str, lines: int = 50) -> str:
    """The last ``lines`` lines a service wrote."""
    s = s or settings("stack")
    names = [svc.name for svc in native_services(s)]
    if service not in names:
        raise StackError(f"unknown service {service!r}: choose one of {', '.join(names)}")
    if (_marker(s) or {}).get("mode") == "docker":
        return _compose(s, "logs", "--no-color", "--tail", str(lines), service)
    path = log_file(s, service)
    if not path.exists():
        raise StackError(f"{service} has no log yet ({path}): start it with `neuralake stack up`")
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def as_json(rows: list[ServiceStatus]) -> str:
    return json.dumps([asdict(row) for row in rows], indent=2)


# --- native mode ---------------------------------------------------------------------


def _start_native(s: Settings, svc: Service, echo: Callable[[str], None]) -> bool:
    """Start ``svc`` unless it runs already; whether this call started it."""
    pid_file = _pid_file(s, svc.name)
    if processes.running(pid_file):
        echo(f"{svc.name:<9} already running")
        return False
    for port in svc.ports:
        if not processes.port_is_free(port):
            raise StackError(
                f"port {port} needed by {svc.name} is held by {processes.port_holder(port)}: "
                f"stop that process, or move the stack with {_MOVE_WITH[svc.name]}"
            )
    if svc.prepare:
        try:
            svc.prepare()
        except subprocess.CalledProcessError as err:
            raise StackError(
                f"preparing {svc.name} failed: {processes.one_line(err.stderr or err)}"
            ) from err
    log = log_file(s, svc.name)
    processes.start(
        svc.command(),
        pid_file=pid_file,
        log_file=log,
        env={**os.environ, **svc.env},
        cwd=svc.data_dir.parent,  # a folder the service's user can enter
        user=svc.user,
    )
    echo(f"{svc.name:<9} started, log: {log}")
    return True


def _wait_healthy(s: Settings, svc: Service, mode: str) -> None:
    if mode == "native":
        log, pid_file = log_file(s, svc.name), _pid_file(s, svc.name)
        processes.wait_healthy(
            svc.name, pid_file, log, lambda: svc.check(s), timeout=svc.start_timeout
        )
        return
    try:  # compose runs the container: only the check to wait for
        processes.wait_until(lambda: svc.check(s), timeout=svc.start_timeout)
    except Exception as err:
        raise StackError(
            f"{svc.name} did not answer within {svc.start_timeout:.0f} s "
            f"({processes.one_line(err)}): see `neuralake stack logs {svc.name}`"
        ) from err


def _pid_file(s: Settings, name: str) -> Path:
    return s.state_dir / "stack" / f"{name}.pid"


def _tracked_names(s: Settings) -> list[str]:
    """Every service with a pid file, in stop order: the reverse of the start order."""
    names = [path.stem for path in (s.state_dir / "stack").glob("*.pid")]
    rank = {name: i for i, name in enumerate(START_ORDER)}
    return sorted(names, key=lambda name: rank.get(name, len(rank)), reverse=True)


# --- docker mode ---------------------------------------------------------------------


def _compose(s: Settings, *args: str) -> str:
    if shutil.which("docker") is None:
        raise StackError("Docker is not installed: use the native stack (`neuralake stack up`)")
    cmd = ["docker", "compose", "-f", str(project_dir() / "docker-compose.yml"), *args]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise StackError(
            f"`docker compose {args[0]}` failed: {processes.one_line(result.stderr)}; "
            "is the Docker engine running? Or use the native stack (`neuralake stack up`)"
        )
    return result.stdout


# --- helpers -------------------------------------------------------------------------


def _select(services: list[Service], only: list[str] | None) -> list[Service]:
    if not only:
        return services
    names = [svc.name for svc in services]
    unknown = [name for name in only if name not in names]
    if unknown:
        raise StackError(f"unknown service {unknown[0]!r}: choose from {', '.join(names)}")
    return [svc for svc in services if svc.name in only]


def _marker(s: Settings) -> dict | None:
    try:
        return json.loads(stack_marker(s.state_dir).read_text())
    except (FileNotFoundError, ValueError):
        return None


def _write_marker(s: Settings, mode: str) -> None:
    marker = stack_marker(s.state_dir)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"mode": mode, "since": datetime.now(UTC).isoformat()}))
