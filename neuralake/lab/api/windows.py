"""The serving windows' processes: started by ``serve()``, restarted by ``stack up``.

A table declared with ``roapi_window_s`` gets a window (:mod:`neuralake.api.window`): a
small process per window rewrites it after every commit of the live table. Each one is
tracked by a pid file, with its description beside it, under ``.state/roapi/windows/``,
so ``neuralake stack down`` can stop them and ``neuralake stack up`` start them again
(this module imports nothing of the stack's control, which imports it).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from neuralake.errors import StackError
from neuralake.lab.api.server import window_command, window_written
from neuralake.lab.stack import processes
from neuralake.lab.stack.services import roapi_config_path
from neuralake.settings import Settings

#: Seconds between a window's refreshes (each one reads the live table's new files).
WINDOW_REFRESH_S = 1.0


def _windows_dir(settings: Settings) -> Path:
    return roapi_config_path(settings).parent / "windows"


def start_window(window: dict, settings: Settings, timeout: float = 120) -> None:
    """Start the process that keeps ``window`` fresh; return once it wrote the window.

    The window's description is kept beside its pid file, so that :func:`restart_windows`
    (which ``neuralake stack up`` calls) can start it again after a restart.
    """
    folder = _windows_dir(settings)
    log, pid = folder / f"{window['name']}.log", folder / f"{window['name']}.pid"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{window['name']}.json").write_text(json.dumps(window))
    command = window_command(window["live_uri"], window["uri"], window["seconds"], WINDOW_REFRESH_S)
    env = {**os.environ, "NEURALAKE_PROFILE": settings.profile, "NO_COLOR": "1"}
    tracked = processes.start(command, pid_file=pid, log_file=log, env=env, cwd=folder)
    check = window_written(log, tracked.log_from)
    processes.wait_healthy(f"window {window['name']}", pid, log, check, timeout=timeout)


def stop_windows(settings: Settings, *, forget: bool = True) -> list[str]:
    """Stop every window process ``serve`` started (by its pid file); their names.

    ``forget=False`` (``neuralake stack down``) keeps their descriptions, so the next
    ``stack up`` starts them again; ``serve`` and ``unserve`` forget them.
    """
    stopped = []
    for pid in sorted(_windows_dir(settings).glob("*.pid")):
        if processes.stop(pid):
            stopped.append(pid.stem)
        pid.unlink(missing_ok=True)
        if forget:
            pid.with_suffix(".json").unlink(missing_ok=True)
    return stopped


def window_running(settings: Settings, name: str) -> bool:
    """Whether the process keeping window ``name`` fresh runs (another notebook's
    ``serve`` stops it: one ROAPI per stack)."""
    return processes.running(_windows_dir(settings) / f"{name}.pid") is not None


def restart_windows(settings: Settings, echo: Callable[[str], None] = print) -> list[str]:
    """Start again every window ``serve`` started whose process is not running (after a
    machine restart or ``stack down``); their names. ``neuralake stack up`` calls it.

    A window that cannot start (its live table was dropped since) is reported in one
    line and forgotten: it never stops the stack from coming up.
    """
    started = []
    for spec in sorted(_windows_dir(settings).glob("*.json")):
        pid = spec.with_suffix(".pid")
        if processes.running(pid):
            continue
        window = json.loads(spec.read_text())
        try:
            start_window(window, settings, timeout=60)
        except StackError as error:
            processes.stop(pid)
            pid.unlink(missing_ok=True)
            spec.unlink()
            echo(f"window {window['name']}: not restarted, forgotten ({error})")
            continue
        echo(f"window {window['name']}: restarted (last {window['seconds']} s)")
        started.append(window["name"])
    return started
