"""Serve a catalog through the stack's ROAPI: write its config, then reload ROAPI.

After a table is added to the catalog, ``serve(catalog)`` makes it queryable over HTTP,
the PostgreSQL wire protocol and Flight SQL; no API code is written. The config lands
where the native stack looks for it (``.state/roapi/roapi.yml``), so ``make up`` starts
ROAPI on it from then on.

A table declared with ``roapi_window_s`` also gets its serving window
(:mod:`neuralake.api.window`): ``serve`` starts one small process per window that
rewrites it after every commit of the live table, waits for its first write (ROAPI
cannot start on a missing object), then reloads ROAPI.

**One ROAPI per stack.** The stack runs a single ROAPI on fixed ports and ``serve``
writes its whole config: serving a catalog *replaces* what another catalog served, even
when table names carry different ``PREFIX``es. In a classroom that shares one stack,
the last student to call ``serve`` decides what ROAPI serves; ``serve`` names the tables
it stopped serving. Isolated serving needs a ROAPI per student (a stack per student, or
the private servers of :mod:`neuralake.lab.api.server`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import yaml

from neuralake.catalog import Catalog
from neuralake.catalog.export import export_catalog
from neuralake.catalog.roapi import RELOAD_INTERVAL_S, served_names, skipped, windows, write_roapi
from neuralake.errors import StackError
from neuralake.lab.api.server import window_command, window_written
from neuralake.lab.stack import control, processes
from neuralake.lab.stack.services import roapi_config_path
from neuralake.settings import Settings

#: Seconds between a window's refreshes (each one reads the live table's new files).
WINDOW_REFRESH_S = 1.0


def serve(
    catalog: Catalog,
    module: str,
    settings: Settings,
    *,
    reload_interval_s: int = RELOAD_INTERVAL_S,
    echo: Callable[[str], None] = print,
) -> dict[str, str]:
    """Write ``catalog``'s ROAPI config for the stack, restart ROAPI on it.

    Returns table id -> the name ROAPI serves it as. ``module`` is how snippets load
    the catalog (it names the config's header).
    """
    export = export_catalog(catalog, module, settings, inspect=False)
    before = served_tables(settings)
    path = write_config(export, settings, reload_interval_s)
    for table, reason in skipped(export):
        echo(f"skipped {table}: {reason}")
    echo(f"wrote {path}")
    gone = sorted(before - served_tables(settings))
    if gone:
        echo(f"no longer served (one ROAPI per stack; PREFIX does not isolate it): {gone}")
    stop_windows(settings)
    for window in windows(export).values():
        start_window(window, settings)
        echo(f"window {window['name']}: last {window['seconds']} s of {window['live_uri']}")
    reload(settings, echo=echo)
    return served_names(export)


def served_tables(settings: Settings) -> set[str]:
    """Names in the stack's current ROAPI config (empty when there is none)."""
    path = roapi_config_path(settings)
    if not path.exists():
        return set()
    return {t["name"] for t in (yaml.safe_load(path.read_text()) or {}).get("tables", [])}


def write_config(export: dict, settings: Settings, reload_interval_s: int) -> Path:
    """The export as ROAPI config at the path the stack starts ROAPI from."""
    return write_roapi(export, roapi_config_path(settings), reload_interval_s=reload_interval_s)


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


def unserve(settings: Settings) -> bool:
    """Stop the stack's ROAPI and its windows, remove its config (True if there was one).

    A config that names dropped tables would stop ROAPI from starting at the next
    ``make up``; tests that serve throw-away tables call this when they are done.
    """
    path = roapi_config_path(settings)
    processes.stop(control._pid_file(settings, "roapi"))
    stop_windows(settings)
    existed = path.exists()
    path.unlink(missing_ok=True)
    return existed


def reload(settings: Settings, echo: Callable[[str], None] = print) -> None:
    """Restart the stack's ROAPI on its current config and wait until it answers.

    ROAPI 0.12.7 cannot add a table with options (``format: delta``) at run time
    (``POST /api/table`` takes only a name and a URI), so a new config means a restart:
    provider tables load in well under a second, memory tables as long as a full read.
    """
    if not roapi_config_path(settings).exists():
        raise StackError(
            f"no ROAPI config at {roapi_config_path(settings)}: write one with "
            "`neuralake api serve`"
        )
    if (control._marker(settings) or {}).get("mode") == "docker":
        raise StackError(
            "the stack runs in Docker: reload ROAPI with `docker compose restart roapi`"
        )
    processes.stop(control._pid_file(settings, "roapi"))
    control.up(settings, only=["roapi"], echo=echo)
